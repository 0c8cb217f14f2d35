-- subject_index.occurred_at goes: no query reads it (a subject's calls are listed in log order and
-- their times come from entries). 28 bytes less per row here; see the PostgreSQL migration 0018.
ALTER TABLE subject_index DROP COLUMN occurred_at;
