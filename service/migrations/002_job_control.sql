-- Job control: pause, priorities, whole-job retries with backoff, one active job per
-- (project, job type), and the worker's wake-up channel.

ALTER TABLE matching_jobs DROP CONSTRAINT matching_jobs_status_check;
ALTER TABLE matching_jobs ADD CONSTRAINT matching_jobs_status_check
    CHECK (status IN ('pending', 'processing', 'paused', 'completed', 'failed', 'cancelled'));

ALTER TABLE matching_jobs
    ADD COLUMN priority integer NOT NULL DEFAULT 5 CHECK (priority BETWEEN 1 AND 10),
    ADD COLUMN attempts integer NOT NULL DEFAULT 0,
    ADD COLUMN max_attempts integer NOT NULL DEFAULT 3,
    ADD COLUMN next_attempt_at timestamptz;

CREATE UNIQUE INDEX matching_jobs_one_active
    ON matching_jobs (project_id, job_type)
    WHERE status IN ('pending', 'processing', 'paused');

DROP INDEX matching_jobs_active;
CREATE INDEX matching_jobs_runnable
    ON matching_jobs (priority DESC, created_at)
    WHERE status IN ('pending', 'processing');

CREATE INDEX matching_jobs_finished ON matching_jobs (completed_at)
    WHERE status IN ('completed', 'failed', 'cancelled');
