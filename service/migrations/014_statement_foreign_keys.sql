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

DROP INDEX items_project_seq;

DO $$
DECLARE
    k record;
BEGIN
    FOR k IN SELECT * FROM (VALUES
        ('catalog_records', 'project_id', 'projects'),
        ('items', 'project_id', 'projects'),
        ('job_items', 'job_id', 'matching_jobs'),
        ('matches', 'job_id', 'matching_jobs')) AS t (child, key, parent)
    LOOP
        EXECUTE format('ALTER TABLE %I DROP CONSTRAINT %I', k.child, k.child || '_' || k.key || '_fkey');
        EXECUTE format(
            'CREATE TRIGGER %I AFTER INSERT ON %I REFERENCING NEW TABLE AS new_rows
             FOR EACH STATEMENT EXECUTE FUNCTION chunkmatch_check_parents(%L, %L, %L)',
            k.child || '_parent', k.child, k.parent, 'id', k.key);
        EXECUTE format(
            'CREATE TRIGGER %I AFTER DELETE ON %I REFERENCING OLD TABLE AS old_rows
             FOR EACH STATEMENT EXECUTE FUNCTION chunkmatch_delete_children(%L, %L, %L)',
            k.parent || '_' || k.child, k.parent, k.child, k.key, 'id');
        EXECUTE format(
            'CREATE TRIGGER %I BEFORE UPDATE OF %I ON %I
             FOR EACH ROW WHEN (OLD.%I IS DISTINCT FROM NEW.%I)
             EXECUTE FUNCTION chunkmatch_fixed_key(%L)',
            k.child || '_fixed_' || k.key, k.key, k.child, k.key, k.key, k.key);
    END LOOP;
    FOR k IN SELECT unnest(ARRAY['projects', 'matching_jobs']) AS parent LOOP
        EXECUTE format(
            'CREATE TRIGGER %I BEFORE UPDATE OF id ON %I
             FOR EACH ROW WHEN (OLD.id IS DISTINCT FROM NEW.id)
             EXECUTE FUNCTION chunkmatch_fixed_key(%L)',
            k.parent || '_fixed_id', k.parent, 'id');
    END LOOP;
END $$;
