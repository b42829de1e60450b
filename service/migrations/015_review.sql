-- Human review (issue 11). A job's decisions worth a reviewer's look are written with each
-- chunk's commit (review_queue: its matches, and its unmatched items whose best candidate
-- may well be right, each with the chance that the machine's decision is wrong); the
-- reviewers' decisions are kept per project (review_decisions, one per item: the latest)
-- and win over machines: a chunk commit or a later job never matches a decided item. A
-- project's acceptance re-fitted from its decisions (projects.calibration) is what its next
-- jobs use, and each job records the calibration it used (matching_jobs.calibration).
-- Public monitoring interface: review_decisions (see README).

CREATE TABLE review_decisions (
    project_id uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    item_id text NOT NULL,
    catalog_id text,  -- NULL with 'no-match': the item has no counterpart in the catalog
    decision text NOT NULL CHECK (decision IN ('match', 'no-match')),
    decided_by text NOT NULL,  -- the owner of the token that decided
    decided_at timestamptz NOT NULL DEFAULT now(),
    job_id uuid,  -- the job it was decided in (no foreign key: the label outlives the job)
    -- what the job proposed for the item when it was decided: the pair the label is about
    proposed_catalog_id text,
    proposed_score double precision,
    proposed_explanation jsonb,
    CHECK (decision = 'no-match' OR catalog_id IS NOT NULL),
    PRIMARY KEY (project_id, item_id)
);
CREATE INDEX review_decisions_recent ON review_decisions (project_id, decided_at DESC);

CREATE TABLE review_queue (
    job_id uuid NOT NULL,
    item_id text NOT NULL,
    catalog_id text NOT NULL,  -- the proposed record: the match or the best candidate
    score double precision NOT NULL,
    matched boolean NOT NULL,
    error_chance double precision NOT NULL,  -- that the job's decision about the item is wrong
    method text NOT NULL,
    reason text NOT NULL DEFAULT '',
    explanation jsonb,  -- of an unmatched item's best candidate (a match keeps its own)
    candidates jsonb NOT NULL,  -- [[catalog id, score], ...] best first
    PRIMARY KEY (job_id, item_id)
);
CREATE INDEX review_queue_order ON review_queue (job_id, error_chance DESC, item_id DESC);
CREATE TRIGGER review_queue_parent AFTER INSERT ON review_queue REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION chunkmatch_check_parents('matching_jobs', 'id', 'job_id');
CREATE TRIGGER matching_jobs_review_queue AFTER DELETE ON matching_jobs
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION chunkmatch_delete_children('review_queue', 'job_id', 'id');

-- {"labels", "threshold", "slope", "intercept", "estimatedPrecision", "estimatedRecall", ...}
ALTER TABLE projects ADD COLUMN calibration jsonb;
ALTER TABLE matching_jobs ADD COLUMN calibration jsonb;
