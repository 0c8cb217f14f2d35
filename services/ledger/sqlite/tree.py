"""Reads stored Merkle nodes from SQLite: one query for any proof.

Level-0 nodes are the leaves in ``entries.leaf``; the perfect nodes of every
:data:`~sealtrail.core.merkle.STRIDE`-th level above are in ``tree_nodes``, and the nodes between
are rebuilt from them.
The functions are synchronous: they run inside a transaction on one of the database's threads.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from sealtrail.core import merkle
from sealtrail.core.merkle import NodeID
from sealtrail.errors import InvalidInputError


def find_nodes(conn: sqlite3.Connection, log_id: str, ids: Sequence[NodeID]) -> dict[NodeID, bytes]:
    """The hashes of those of ``ids`` that the stored nodes give (:func:`~sealtrail.core.merkle.rebuild`)."""
    if not ids:
        return {}
    base = merkle.base_nodes(ids)
    return merkle.rebuild(ids, _stored(conn, log_id, base))


def _stored(conn: sqlite3.Connection, log_id: str, ids: Sequence[NodeID]) -> dict[NodeID, bytes]:
    values = ", ".join("(?, ?, ?)" for _ in ids)
    sql = (
        f"WITH n(ord, level, idx) AS (VALUES {values})"
        " SELECT n.ord, coalesce(t.hash, e.leaf) FROM n"
        " LEFT JOIN tree_nodes t ON n.level > 0 AND t.log_id = ? AND t.level = n.level AND t.idx = n.idx"
        " LEFT JOIN entries e ON n.level = 0 AND e.log_id = ? AND e.idx = n.idx"
    )
    params: list[object] = [v for i, node in enumerate(ids) for v in (i, node.level, node.index)]
    rows = conn.execute(sql, (*params, log_id, log_id)).fetchall()
    return {ids[ord_]: bytes(h) for ord_, h in rows if h is not None}


class StoredNodes:
    """:class:`~sealtrail.core.merkle.NodeReader` over one log's stored tree."""

    def __init__(self, conn: sqlite3.Connection, log_id: str) -> None:
        self._conn = conn
        self._log_id = log_id

    def get_nodes(self, ids: Sequence[NodeID]) -> list[bytes]:
        found = find_nodes(self._conn, self._log_id, ids)
        missing = next((n for n in ids if n not in found), None)
        if missing is not None:
            raise InvalidInputError(
                f"node ({missing.level}, {missing.index}) of log {self._log_id} is not stored")
        return [found[n] for n in ids]


def inclusion_proof(conn: sqlite3.Connection, log_id: str, index: int, size: int) -> list[bytes]:
    """RFC 9162 inclusion proof of leaf ``index`` in the tree of ``size`` leaves."""
    return merkle.inclusion_proof(StoredNodes(conn, log_id), index, size)


def consistency_proof(conn: sqlite3.Connection, log_id: str, size1: int, size2: int) -> list[bytes]:
    """RFC 9162 consistency proof from ``size1`` to ``size2``."""
    return merkle.consistency_proof(StoredNodes(conn, log_id), size1, size2)


def root_at(conn: sqlite3.Connection, log_id: str, size: int) -> bytes:
    """The root of the first ``size`` leaves, recomputed from stored nodes."""
    return merkle.root_at(StoredNodes(conn, log_id), size)
