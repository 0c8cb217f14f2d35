-- The ledger keeps the perfect tree nodes of every fourth level only (levels 4, 8, 12, ...; the
-- leaves are entries.leaf) and rebuilds the nodes between them from up to 15 stored nodes when a
-- proof needs one (sealtrail.core.merkle.STRIDE). That is one node row per 15 entries instead of
-- one per entry, which was a sixth of an append's database time. The rows of the other levels
-- are no longer read; this removes them. On a large log it deletes about as many rows as the
-- log has entries, once.
DELETE FROM tree_nodes WHERE level % 4 <> 0;
