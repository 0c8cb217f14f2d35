-- subject_index.occurred_at goes: no query reads it (a subject's calls are listed in log order and
-- their times come from entries). Rows written from now on are 8 bytes shorter; PostgreSQL drops
-- the column from the catalogue at once and the space of existing rows when they are rewritten.
ALTER TABLE subject_index DROP COLUMN occurred_at;
