"""Reads stored Merkle nodes from PostgreSQL: one round trip for any proof.

Level-0 nodes are the leaves in ``entries.leaf``; the perfect nodes of every
:data:`~sealtrail.core.merkle.STRIDE`-th level above are in ``tree_nodes``, and the nodes between
are rebuilt from them.
"""

from __future__ import annotations

from collections.abc import Sequence

from sealtrail.core.merkle import NodeID, ProofPlan, base_nodes, plan_consistency, plan_inclusion, range_nodes, rebuild
from sealtrail.errors import InvalidInputError
from sealtrail.infra.postgres import Conn

_NODES_SQL = """
SELECT coalesce(t.hash, e.leaf) AS hash
FROM unnest($2::int[], $3::bigint[]) WITH ORDINALITY AS n(level, idx, ord)
LEFT JOIN tree_nodes t ON n.level > 0 AND t.log_id = $1 AND t.level = n.level AND t.idx = n.idx
LEFT JOIN entries e ON n.level = 0 AND e.log_id = $1 AND e.idx = n.idx
ORDER BY n.ord
"""


async def find_nodes(conn: Conn, log_id: str, ids: Sequence[NodeID]) -> dict[NodeID, bytes]:
    """The hashes of those of ``ids`` that the stored nodes give (:func:`~sealtrail.core.merkle.rebuild`)."""
    if not ids:
        return {}
    base = base_nodes(ids)
    rows = await conn.fetch(_NODES_SQL, log_id, [i.level for i in base], [i.index for i in base])
    return rebuild(ids, {node: r["hash"] for node, r in zip(base, rows, strict=True) if r["hash"] is not None})


async def get_nodes(conn: Conn, log_id: str, ids: Sequence[NodeID]) -> list[bytes]:
    """The stored hashes of ``ids``, in order; InvalidInputError when one is missing."""
    found = await find_nodes(conn, log_id, ids)
    for node in ids:
        if node not in found:
            raise InvalidInputError(f"node ({node.level}, {node.index}) of log {log_id} is not stored")
    return [found[node] for node in ids]


async def _assemble(conn: Conn, log_id: str, plan: ProofPlan) -> list[bytes]:
    return plan.assemble(await get_nodes(conn, log_id, plan.ids))


async def inclusion_proof(conn: Conn, log_id: str, index: int, size: int) -> list[bytes]:
    """RFC 9162 inclusion proof of leaf ``index`` in the tree of ``size`` leaves."""
    return await _assemble(conn, log_id, plan_inclusion(index, size))


async def consistency_proof(conn: Conn, log_id: str, size1: int, size2: int) -> list[bytes]:
    """RFC 9162 consistency proof from ``size1`` to ``size2``."""
    return await _assemble(conn, log_id, plan_consistency(size1, size2))


async def root_at(conn: Conn, log_id: str, size: int) -> bytes:
    """The root of the first ``size`` leaves, recomputed from stored nodes."""
    ids = range_nodes(0, size)
    if not ids:
        from sealtrail.core.merkle import empty_root

        return empty_root()
    return ProofPlan(tuple(ids), 0, len(ids)).assemble(await get_nodes(conn, log_id, ids))[0]
