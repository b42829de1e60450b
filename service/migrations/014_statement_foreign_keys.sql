-- Foreign keys checked once per statement, for the bulk tables.
--
-- A foreign key checks each inserted row on its own (an internal trigger per row): a third
-- of a 100,000-record upload's insert, and as much again for the job's item list at job
-- creation and a few milliseconds of every chunk's matches insert. The bulk tables' keys
-- to their parent are checked here instead by one statement-level trigger that sees all of
-- a statement's new rows at once (a transition table), locks their parents as a foreign key
-- does (FOR KEY SHARE, so a concurrent delete of the parent waits for this transaction and
-- then removes the new rows too) and fails with the same SQLSTATE (23503) when a parent is
-- missing. Deleting a parent deletes its children in one statement (ON DELETE CASCADE), and
-- a child's key or a parent's id cannot be changed. Small tables keep ordinary foreign keys.
--
-- The project's item order index is dropped too: only job creation reads items in that
-- order, and it reads all of a version at once (one sort of the rows it reads anyway).

CREATE FUNCTION chunkmatch_check_parents() RETURNS trigger
LANGUAGE plpgsql AS $$
-- TG_ARGV: parent table, its key column, the child's column naming it
DECLARE
    missing text;
BEGIN
    EXECUTE format(
        'SELECT k::text FROM (SELECT DISTINCT %3$I AS k FROM new_rows) n
         WHERE NOT EXISTS (SELECT 1 FROM %1$I p WHERE p.%2$I = n.k FOR KEY SHARE OF p)
         LIMIT 1',
        TG_ARGV[0], TG_ARGV[1], TG_ARGV[2])
    INTO missing;
    IF missing IS NOT NULL THEN
        RAISE foreign_key_violation USING
            MESSAGE = format('insert into %I violates its key to %I: no %I %s',
                             TG_TABLE_NAME, TG_ARGV[0], TG_ARGV[0], missing),
            TABLE = TG_TABLE_NAME;
    END IF;
    RETURN NULL;
END $$;

CREATE FUNCTION chunkmatch_delete_children() RETURNS trigger
LANGUAGE plpgsql AS $$
-- TG_ARGV: child table, its column naming the parent, the parent's key column
BEGIN
    EXECUTE format(
        'DELETE FROM %1$I c WHERE c.%2$I IN (SELECT o.%3$I FROM old_rows o)',
        TG_ARGV[0], TG_ARGV[1], TG_ARGV[2]);
    RETURN NULL;
END $$;

CREATE FUNCTION chunkmatch_fixed_key() RETURNS trigger
LANGUAGE plpgsql AS $$
-- TG_ARGV: the key column that may not change
BEGIN
    RAISE foreign_key_violation USING
        MESSAGE = format('%I.%I cannot be changed', TG_TABLE_NAME, TG_ARGV[0]),
        TABLE = TG_TABLE_NAME;
END $$;

ALTER TABLE catalog_records DROP CONSTRAINT catalog_records_project_id_fkey;
ALTER TABLE items DROP CONSTRAINT items_project_id_fkey;
ALTER TABLE job_items DROP CONSTRAINT job_items_job_id_fkey;
ALTER TABLE matches DROP CONSTRAINT matches_job_id_fkey;
DROP INDEX items_project_seq;

CREATE TRIGGER catalog_records_project AFTER INSERT ON catalog_records
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT
    EXECUTE FUNCTION chunkmatch_check_parents('projects', 'id', 'project_id');
CREATE TRIGGER items_project AFTER INSERT ON items
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT
    EXECUTE FUNCTION chunkmatch_check_parents('projects', 'id', 'project_id');
CREATE TRIGGER job_items_job AFTER INSERT ON job_items
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT
    EXECUTE FUNCTION chunkmatch_check_parents('matching_jobs', 'id', 'job_id');
CREATE TRIGGER matches_job AFTER INSERT ON matches
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT
    EXECUTE FUNCTION chunkmatch_check_parents('matching_jobs', 'id', 'job_id');

CREATE TRIGGER projects_catalog_records AFTER DELETE ON projects
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT
    EXECUTE FUNCTION chunkmatch_delete_children('catalog_records', 'project_id', 'id');
CREATE TRIGGER projects_items AFTER DELETE ON projects
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT
    EXECUTE FUNCTION chunkmatch_delete_children('items', 'project_id', 'id');
CREATE TRIGGER matching_jobs_job_items AFTER DELETE ON matching_jobs
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT
    EXECUTE FUNCTION chunkmatch_delete_children('job_items', 'job_id', 'id');
CREATE TRIGGER matching_jobs_matches AFTER DELETE ON matching_jobs
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT
    EXECUTE FUNCTION chunkmatch_delete_children('matches', 'job_id', 'id');

CREATE TRIGGER catalog_records_fixed_project BEFORE UPDATE OF project_id ON catalog_records
    FOR EACH ROW WHEN (OLD.project_id IS DISTINCT FROM NEW.project_id)
    EXECUTE FUNCTION chunkmatch_fixed_key('project_id');
CREATE TRIGGER items_fixed_project BEFORE UPDATE OF project_id ON items
    FOR EACH ROW WHEN (OLD.project_id IS DISTINCT FROM NEW.project_id)
    EXECUTE FUNCTION chunkmatch_fixed_key('project_id');
CREATE TRIGGER job_items_fixed_job BEFORE UPDATE OF job_id ON job_items
    FOR EACH ROW WHEN (OLD.job_id IS DISTINCT FROM NEW.job_id)
    EXECUTE FUNCTION chunkmatch_fixed_key('job_id');
CREATE TRIGGER matches_fixed_job BEFORE UPDATE OF job_id ON matches
    FOR EACH ROW WHEN (OLD.job_id IS DISTINCT FROM NEW.job_id)
    EXECUTE FUNCTION chunkmatch_fixed_key('job_id');
CREATE TRIGGER projects_fixed_id BEFORE UPDATE OF id ON projects
    FOR EACH ROW WHEN (OLD.id IS DISTINCT FROM NEW.id)
    EXECUTE FUNCTION chunkmatch_fixed_key('id');
CREATE TRIGGER matching_jobs_fixed_id BEFORE UPDATE OF id ON matching_jobs
    FOR EACH ROW WHEN (OLD.id IS DISTINCT FROM NEW.id)
    EXECUTE FUNCTION chunkmatch_fixed_key('id');
