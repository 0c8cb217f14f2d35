"""Local PostgreSQL and Kafka for development and tests, started from real binaries.

One piece of start/stop code backs both the pytest session fixtures and the scripts
``deploy/local/up``, ``deploy/local/down`` and ``deploy/local/status``. Nothing here is used in
production; it only needs the system's PostgreSQL server binaries and a Java runtime with Maven
(to fetch the Kafka jars once into a user cache).
"""

from __future__ import annotations

from sealtrail.devstack.kafka import KafkaServer
from sealtrail.devstack.postgres import PostgresServer

__all__ = ["KafkaServer", "PostgresServer"]
