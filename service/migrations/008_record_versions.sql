-- Record versions: an upload no longer overwrites a record in place; it closes the record's
-- current row (version_to = the upload's version) and adds a new one (version_from). A job
-- records the catalog and items versions it was created at and reads the rows visible at
-- them (version_from <= v AND (version_to IS NULL OR version_to > v)), so an upload during
-- a live job only affects later jobs, and a job's matches stay readable as they were. Rows
-- no job can see any more are pruned. A match whose item or catalog text (on its job's
-- fields) changed since is stale: the item counts as unmatched again.

ALTER TABLE catalog_records
    ADD COLUMN version_from bigint NOT NULL DEFAULT 0,
    ADD COLUMN version_to bigint;
ALTER TABLE catalog_records DROP CONSTRAINT catalog_records_pkey;
ALTER TABLE catalog_records ADD PRIMARY KEY (project_id, record_id, version_from);
CREATE UNIQUE INDEX catalog_records_current
    ON catalog_records (project_id, record_id) WHERE version_to IS NULL;
CREATE INDEX catalog_records_closed ON catalog_records (project_id) WHERE version_to IS NOT NULL;

ALTER TABLE items
    ADD COLUMN version_from bigint NOT NULL DEFAULT 0,
    ADD COLUMN version_to bigint;
ALTER TABLE items DROP CONSTRAINT items_pkey;
ALTER TABLE items ADD PRIMARY KEY (project_id, item_id, version_from);
CREATE UNIQUE INDEX items_current ON items (project_id, item_id) WHERE version_to IS NULL;
CREATE INDEX items_closed ON items (project_id) WHERE version_to IS NOT NULL;

ALTER TABLE matching_jobs
    ADD COLUMN catalog_version bigint NOT NULL DEFAULT 0,
    ADD COLUMN items_version bigint NOT NULL DEFAULT 0;
UPDATE matching_jobs j SET catalog_version = p.catalog_version, items_version = p.items_version
FROM projects p WHERE p.id = j.project_id;

ALTER TABLE matches ADD COLUMN stale boolean NOT NULL DEFAULT false;
CREATE INDEX matches_project_catalog ON matches (project_id, catalog_id);

-- The text a job matches on: the values of its fields, in order, joined with spaces.
CREATE FUNCTION chunkmatch_text(data jsonb, fields text[]) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT array_to_string(ARRAY(
        SELECT data ->> f.name FROM unnest(fields) WITH ORDINALITY AS f(name, n) ORDER BY f.n),
        ' ')
$$;

-- A job's fields of one side ('itemFields' or 'catalogFields'), from its config.
CREATE FUNCTION chunkmatch_fields(config jsonb, side text) RETURNS text[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT ARRAY(SELECT jsonb_array_elements_text(COALESCE(config -> side, '[]'::jsonb)))
$$;
