-- Multi-stage jobs (enhanced → ai → web-search), per-item outcomes, provider usage and the
-- persistent LLM answer cache.

-- Each stage works on its own numbered queue of the job's items.
ALTER TABLE job_items ADD COLUMN stage integer NOT NULL DEFAULT 1;
ALTER TABLE job_items DROP CONSTRAINT job_items_pkey;
ALTER TABLE job_items ADD PRIMARY KEY (job_id, stage, ord);
ALTER TABLE job_items
    ADD COLUMN status text NOT NULL DEFAULT 'queued'
        CHECK (status IN ('queued', 'done', 'failed', 'requeued')),
    ADD COLUMN error text;
CREATE INDEX job_items_failed ON job_items (job_id) WHERE status = 'failed';

ALTER TABLE matching_jobs
    ADD COLUMN stage_total integer NOT NULL DEFAULT 0,      -- items queued in this stage
    ADD COLUMN stage_processed integer NOT NULL DEFAULT 0,  -- of them, taken by committed chunks
    ADD COLUMN failed_items integer NOT NULL DEFAULT 0,
    ADD COLUMN waiting_reason text,
    ADD COLUMN llm_requests integer NOT NULL DEFAULT 0,
    ADD COLUMN prompt_tokens bigint NOT NULL DEFAULT 0,
    ADD COLUMN completion_tokens bigint NOT NULL DEFAULT 0,
    ADD COLUMN cache_hits integer NOT NULL DEFAULT 0,
    ADD COLUMN search_requests integer NOT NULL DEFAULT 0,
    ADD COLUMN estimated_cost_usd double precision NOT NULL DEFAULT 0;
UPDATE matching_jobs SET stage_total = total_items, stage_processed = processed_items;
-- claims now count within the current stage's queue
DO $$
DECLARE c text;
BEGIN
    SELECT conname INTO c FROM pg_constraint
    WHERE conrelid = 'matching_jobs'::regclass
      AND pg_get_constraintdef(oid) LIKE '%claimed_items <= total_items%';
    IF c IS NOT NULL THEN
        EXECUTE format('ALTER TABLE matching_jobs DROP CONSTRAINT %I', c);
    END IF;
END $$;
ALTER TABLE matching_jobs ADD CONSTRAINT matching_jobs_claims_in_stage
    CHECK (claimed_items <= stage_total);

-- Answers to LLM questions, shared by every job: the same question is never paid twice.
CREATE TABLE llm_cache (
    key text PRIMARY KEY,
    catalog_id text,
    confidence double precision NOT NULL,
    reason text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
