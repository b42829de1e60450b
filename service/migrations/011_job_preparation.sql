-- A job's preparation: while a service process builds the catalog index (and, for the
-- enhanced stage, the peers) the job needs before its first chunk, it writes what it is
-- doing here as {"step": "catalog_index" | "peers", "progress": 0..1}; NULL once ready.
-- Informational only (a chunk commit clears it); the index itself is each process's cache.
ALTER TABLE matching_jobs ADD COLUMN preparation jsonb;
