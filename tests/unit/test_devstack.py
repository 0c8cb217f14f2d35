"""The local-stack code fails loudly, with what to install, when a service cannot start."""

from __future__ import annotations

from pathlib import Path

import pytest

from sealtrail.devstack import _proc, kafka, postgres
from sealtrail.errors import ServiceStartError


def test_missing_postgres_binaries_without_root_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With no server binaries and no root, start() raises naming the package to install."""
    monkeypatch.setattr(postgres, "find_bindir", lambda: None)
    monkeypatch.setattr(_proc.os, "geteuid", lambda: 1000)
    with pytest.raises(ServiceStartError, match="apt-get install postgresql"):
        postgres.ensure_bindir()


def test_missing_java_without_root_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    """With no java on PATH and no root, Kafka start-up raises naming the package to install."""
    monkeypatch.setattr(kafka.shutil, "which", lambda name: None)
    monkeypatch.setattr(_proc.os, "geteuid", lambda: 1000)
    with pytest.raises(ServiceStartError, match="default-jre-headless"):
        kafka.ensure_java()


def test_failed_command_reports_its_output(tmp_path: Path) -> None:
    """A failing start-up command raises with its exit code and the tail of its output."""
    with pytest.raises(ServiceStartError, match=r"exit 3"):
        _proc.run(["sh", "-c", "echo boom >&2; exit 3"], what="probe")


def test_kafka_pom_names_the_broker_and_its_logging_jars() -> None:
    """The pom fetches kafka_2.13 3.9.x plus reload4j and slf4j-reload4j."""
    text = kafka.POM.read_text()
    assert "<artifactId>kafka_2.13</artifactId>" in text
    assert "<artifactId>reload4j</artifactId>" in text
    assert "<artifactId>slf4j-reload4j</artifactId>" in text
    assert kafka.KAFKA_VERSION.startswith("3.9.")


def test_cluster_ids_never_start_with_a_dash() -> None:
    """Kafka's storage tool reads an id starting with '-' as an option, so none is ever made."""
    ids = [kafka._cluster_id() for _ in range(5000)]
    assert all(len(i) == 22 and not i.startswith("-") for i in ids)
