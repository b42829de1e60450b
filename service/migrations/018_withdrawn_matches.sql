-- Matches withdrawn beside the job's other matches of their record (issue 10). A catalog
-- lists each article once, so when several items of a job are matched to one record, at
-- most one of them is usually right. When a job's matching stage has committed its last
-- chunk, each of its matches is judged beside the others of its record
-- (chunkmatch_contested_chance, migration 017, with the job's own allowance: the share of
-- its matches that share their record); one then less likely right than the job's
-- threshold is withdrawn: moved here, its item left unmatched for a later stage or none
-- (contest_matches in queries.sql; matching.claims.withdraw_contested is the same rule in
-- Python). A withdrawn match still counts as a rival when the stage ends again (failed
-- items retried), so the outcome does not depend on the order of the job's chunks.
-- Public monitoring interface: withdrawn_matches (see README).

CREATE TABLE withdrawn_matches (
    job_id uuid NOT NULL,
    item_id text NOT NULL,
    catalog_id text NOT NULL,
    score double precision NOT NULL,  -- the match's own score
    chance double precision NOT NULL,  -- that it is right beside its record's other matches
    method text NOT NULL,
    reason text NOT NULL DEFAULT '',
    explanation jsonb,
    stage integer NOT NULL,
    withdrawn_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (job_id, item_id)
);
CREATE TRIGGER withdrawn_matches_parent AFTER INSERT ON withdrawn_matches
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION chunkmatch_check_parents('matching_jobs', 'id', 'job_id');
CREATE TRIGGER matching_jobs_withdrawn_matches AFTER DELETE ON matching_jobs
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION chunkmatch_delete_children('withdrawn_matches', 'job_id', 'id');
