-- ping --
-- Is the database there?
SELECT 1;

-- create_project --
-- A new, empty project, unless the owner already has $3 (NULL: no limit); run under
-- lock_owner_projects so that concurrent creations cannot pass the limit together.
INSERT INTO projects (name, owner)
SELECT $1, $2
WHERE $3::bigint IS NULL OR (SELECT count(*) FROM projects WHERE owner = $2) < $3
RETURNING id, name, owner, created_at, catalog_columns, item_columns;

-- lock_owner_projects --
-- Serialise project creation of one owner (for the projects quota).
SELECT pg_advisory_xact_lock(hashtext('chunkmatch.projects'), hashtext($1));

-- count_catalog --
-- How many (current) catalog records a project has.
SELECT count(*) FROM catalog_records WHERE project_id = $1 AND version_to IS NULL;

-- count_items --
-- How many (current) items a project has.
SELECT count(*) FROM items WHERE project_id = $1 AND version_to IS NULL;

-- list_projects --
-- Projects, newest first, with their counts ($2: only this owner's; NULL: all).
SELECT p.id, p.name, p.owner, p.created_at, p.catalog_columns, p.item_columns,
       (SELECT count(*) FROM catalog_records c
        WHERE c.project_id = p.id AND c.version_to IS NULL) AS catalog_count,
       (SELECT count(*) FROM items i WHERE i.project_id = p.id AND i.version_to IS NULL) AS item_count,
       (SELECT count(DISTINCT m.item_id) FROM matches m
        WHERE m.project_id = p.id AND NOT m.stale) AS matched_items
FROM projects p
WHERE $2::text IS NULL OR p.owner = $2
ORDER BY p.created_at DESC, p.id
LIMIT $1;

-- get_project --
-- One project with its counts and calibration ($2: only if this owner's; NULL: any).
SELECT p.id, p.name, p.owner, p.created_at, p.catalog_columns, p.item_columns, p.calibration,
       (SELECT count(*) FROM catalog_records c
        WHERE c.project_id = p.id AND c.version_to IS NULL) AS catalog_count,
       (SELECT count(*) FROM items i WHERE i.project_id = p.id AND i.version_to IS NULL) AS item_count,
       (SELECT count(DISTINCT m.item_id) FROM matches m
        WHERE m.project_id = p.id AND NOT m.stale) AS matched_items
FROM projects p
WHERE p.id = $1 AND ($2::text IS NULL OR p.owner = $2);

-- lock_project --
-- Serialise uploads and job creation of one project.
SELECT id, catalog_version, catalog_columns, item_columns, calibration
FROM projects WHERE id = $1 FOR UPDATE;

-- create_upload_table --
-- Staging table for one upload, filled by COPY (line: where a CSV or sheet record was).
CREATE TEMPORARY TABLE upload_records (record_id text NOT NULL, data text NOT NULL, line integer)
ON COMMIT DROP;

-- upload_duplicate --
-- The first staged record whose id an earlier line already has, with both lines.
SELECT record_id, lines[1] AS first_line, lines[2] AS line
FROM (
    SELECT record_id, (array_agg(line ORDER BY line))[1:2] AS lines
    FROM upload_records
    WHERE record_id IN (
        SELECT record_id FROM upload_records GROUP BY record_id HAVING count(*) > 1)
    GROUP BY record_id
) d
ORDER BY lines[2]
LIMIT 1;

-- count_current_catalog --
-- How many of the staged records replace a current catalog record (the rest are new).
SELECT count(*) FROM upload_records u
WHERE EXISTS (SELECT 1 FROM catalog_records c
              WHERE c.project_id = $1 AND c.record_id = u.record_id AND c.version_to IS NULL);

-- count_current_items --
-- How many of the staged records replace a current item (the rest are new).
SELECT count(*) FROM upload_records u
WHERE EXISTS (SELECT 1 FROM items i
              WHERE i.project_id = $1 AND i.item_id = u.record_id AND i.version_to IS NULL);

-- close_changed_catalog --
-- Catalog records the upload changes stop being current at version $2 (jobs of earlier
-- versions still see them); a match whose record text (on its job's fields) changes is stale.
WITH changed AS (
    UPDATE catalog_records c SET version_to = $2
    FROM upload_records u
    WHERE c.project_id = $1 AND c.record_id = u.record_id AND c.version_to IS NULL
      AND c.data <> u.data::jsonb
    RETURNING c.record_id, c.data AS old_data, u.data::jsonb AS new_data
), staled AS (
    UPDATE matches m SET stale = true
    FROM changed ch, matching_jobs j
    WHERE m.project_id = $1 AND m.catalog_id = ch.record_id AND NOT m.stale AND j.id = m.job_id
      AND chunkmatch_text(ch.old_data, chunkmatch_fields(j.config, 'catalogFields'))
          IS DISTINCT FROM chunkmatch_text(ch.new_data, chunkmatch_fields(j.config, 'catalogFields'))
    RETURNING 1
)
SELECT (SELECT count(*) FROM changed) AS changed, (SELECT count(*) FROM staled) AS staled;

-- close_changed_items --
-- Items the upload changes stop being current at version $2 (jobs of earlier versions still
-- see them); a match whose item text (on its job's fields) changes is stale.
WITH changed AS (
    UPDATE items i SET version_to = $2
    FROM upload_records u
    WHERE i.project_id = $1 AND i.item_id = u.record_id AND i.version_to IS NULL
      AND i.data <> u.data::jsonb
    RETURNING i.item_id, i.data AS old_data, u.data::jsonb AS new_data
), staled AS (
    UPDATE matches m SET stale = true
    FROM changed ch, matching_jobs j
    WHERE m.project_id = $1 AND m.item_id = ch.item_id AND NOT m.stale AND j.id = m.job_id
      AND chunkmatch_text(ch.old_data, chunkmatch_fields(j.config, 'itemFields'))
          IS DISTINCT FROM chunkmatch_text(ch.new_data, chunkmatch_fields(j.config, 'itemFields'))
    RETURNING 1
)
SELECT (SELECT count(*) FROM changed) AS changed, (SELECT count(*) FROM staled) AS staled;

-- insert_catalog --
-- Staged records without a current row (new, or just closed) become current at version $2.
INSERT INTO catalog_records (project_id, record_id, data, version_from)
SELECT $1, u.record_id, u.data::jsonb, $2 FROM upload_records u
WHERE NOT EXISTS (SELECT 1 FROM catalog_records c
                  WHERE c.project_id = $1 AND c.record_id = u.record_id AND c.version_to IS NULL);

-- insert_items --
-- Staged items the project has never had become current at version $2.
INSERT INTO items (project_id, item_id, data, version_from)
SELECT $1, u.record_id, u.data::jsonb, $2
FROM upload_records u
WHERE NOT EXISTS (SELECT 1 FROM items i WHERE i.project_id = $1 AND i.item_id = u.record_id);

-- insert_changed_items --
-- Staged items whose row was just closed (at version $2) become current at $2, keeping their
-- place in the project's order.
INSERT INTO items (project_id, item_id, data, version_from, seq) OVERRIDING SYSTEM VALUE
SELECT $1, u.record_id, u.data::jsonb, $2, o.seq
FROM upload_records u
JOIN items o ON o.project_id = $1 AND o.item_id = u.record_id AND o.version_to = $2;

-- prune_catalog_versions --
-- Forget catalog rows no job of project $1 (NULL: every project) can see any more.
DELETE FROM catalog_records c
WHERE c.version_to IS NOT NULL AND ($1::uuid IS NULL OR c.project_id = $1)
  AND NOT EXISTS (SELECT 1 FROM matching_jobs j
                  WHERE j.project_id = c.project_id
                    AND j.catalog_version >= c.version_from AND j.catalog_version < c.version_to);

-- prune_items_versions --
-- Forget item rows no job of project $1 (NULL: every project) can see any more.
DELETE FROM items i
WHERE i.version_to IS NOT NULL AND ($1::uuid IS NULL OR i.project_id = $1)
  AND NOT EXISTS (SELECT 1 FROM matching_jobs j
                  WHERE j.project_id = i.project_id
                    AND j.items_version >= i.version_from AND j.items_version < i.version_to);

-- add_catalog_columns --
-- Remember the catalog's columns and give the catalog a new version (indexes are rebuilt).
UPDATE projects
SET catalog_columns = ARRAY(
        SELECT DISTINCT c FROM unnest(catalog_columns || $2::text[]) AS c ORDER BY c),
    catalog_version = catalog_version + 1
WHERE id = $1
RETURNING catalog_version AS version;

-- add_item_columns --
-- Remember the items' columns and give the items a new version (peers are rebuilt).
UPDATE projects
SET item_columns = ARRAY(
        SELECT DISTINCT c FROM unnest(item_columns || $2::text[]) AS c ORDER BY c),
    items_version = items_version + 1
WHERE id = $1
RETURNING items_version AS version;

-- current_catalog_columns --
-- After records changed: the catalog's columns are those of its current records.
UPDATE projects p
SET catalog_columns = ARRAY(
    SELECT DISTINCT k FROM catalog_records c, jsonb_object_keys(c.data) AS k
    WHERE c.project_id = $1 AND c.version_to IS NULL ORDER BY k)
WHERE p.id = $1;

-- current_items_columns --
-- After items changed: the items' columns are those of the current items.
UPDATE projects p
SET item_columns = ARRAY(
    SELECT DISTINCT k FROM items i, jsonb_object_keys(i.data) AS k
    WHERE i.project_id = $1 AND i.version_to IS NULL ORDER BY k)
WHERE p.id = $1;

-- insert_job --
-- A new pending job (its items are added by snapshot_job_items), over the project's current
-- catalog and items versions.
INSERT INTO matching_jobs
    (project_id, job_type, config, stages, current_stage_name, chunk_size, priority, max_attempts,
     catalog_version, items_version, calibration)
SELECT $1, $2, $3, $4, $5, $6, $7, $8, p.catalog_version, p.items_version, $9
FROM projects p WHERE p.id = $1
RETURNING id;

-- active_job --
-- The project's active job of a type, if any (one at a time).
SELECT id FROM matching_jobs
WHERE project_id = $1 AND job_type = $2 AND status IN ('pending', 'processing', 'paused');

-- snapshot_job_items --
-- Freeze the job's items: the project's items unmatched right now (no match, or only stale
-- ones) that no reviewer has decided, numbered 1..n.
INSERT INTO job_items (job_id, ord, item_id)
SELECT $1, row_number() OVER (ORDER BY i.seq), i.item_id
FROM items i
WHERE i.project_id = $2 AND i.version_to IS NULL
  AND NOT EXISTS (
      SELECT 1 FROM matches m
      WHERE m.project_id = i.project_id AND m.item_id = i.item_id AND NOT m.stale)
  AND NOT EXISTS (
      SELECT 1 FROM review_decisions d WHERE d.project_id = i.project_id AND d.item_id = i.item_id);

-- set_job_total --
-- Record how many items the job has.
UPDATE matching_jobs SET total_items = $2, stage_total = $2 WHERE id = $1;

-- get_job --
-- One job.
SELECT * FROM matching_jobs WHERE id = $1;

-- set_job_preparation --
-- What the job's preparation is doing ($2: {"step", "progress"}), or NULL once it is ready,
-- and (not NULL $3) the ETA it gives meanwhile: the build left and its items at a prior rate.
UPDATE matching_jobs
SET preparation = $2::jsonb,
    eta_seconds = COALESCE($3::float8, eta_seconds),
    estimated_completion = CASE WHEN $3::float8 IS NULL THEN estimated_completion
                                ELSE now() + make_interval(secs => $3::float8) END
WHERE id = $1 AND (preparation IS DISTINCT FROM $2::jsonb
                   OR ($3::float8 IS NOT NULL AND eta_seconds IS DISTINCT FROM $3::float8));

-- recent_stage_rates --
-- Items per second the stage named $2 ran at in the latest $3 completed jobs that had it,
-- those of the owner of project $1 first, then anyone's: each job's stage items, its first
-- chunk left out, over the wall clock from the end of that chunk to the end of its last.
WITH recent AS (
    SELECT j.id, array_position(j.stages, $2::text) AS stage
    FROM matching_jobs j
    JOIN projects p ON p.id = j.project_id
    WHERE j.status = 'completed' AND $2::text = ANY(j.stages)
    ORDER BY p.owner = (SELECT owner FROM projects WHERE id = $1) DESC, j.completed_at DESC
    LIMIT $3
), spans AS (
    SELECT r.id,
           sum(c.items) FILTER (WHERE c.seq > first.seq) AS items,
           extract(epoch FROM max(c.finished_at)
                   - max(c.finished_at) FILTER (WHERE c.seq = first.seq))::float8 AS seconds
    FROM recent r
    CROSS JOIN LATERAL (
        SELECT min(f.seq) AS seq FROM job_chunks f WHERE f.job_id = r.id AND f.stage = r.stage
    ) first
    JOIN job_chunks c ON c.job_id = r.id AND c.stage = r.stage AND c.status = 'done'
    GROUP BY r.id
)
SELECT items / seconds AS items_per_second
FROM spans
WHERE items > 0 AND seconds > 0;

-- get_owned_job --
-- One job, if its project belongs to owner $2 (NULL: any).
SELECT j.* FROM matching_jobs j
JOIN projects p ON p.id = j.project_id
WHERE j.id = $1 AND ($2::text IS NULL OR p.owner = $2);

-- list_jobs --
-- Jobs (of project $1, or all) visible to owner $3 (NULL: all), newest first.
SELECT j.* FROM matching_jobs j
JOIN projects p ON p.id = j.project_id
WHERE ($1::uuid IS NULL OR j.project_id = $1) AND ($3::text IS NULL OR p.owner = $3)
ORDER BY j.created_at DESC, j.id
LIMIT $2;

-- set_job_status --
-- Move a job from one of the statuses in $3 to $2 (manual change, cancel, pause, resume,
-- retry). Finished statuses stamp completed_at; coming back to life clears the error and
-- the retry state.
UPDATE matching_jobs
SET status = $2,
    error = CASE WHEN $2 IN ('pending', 'processing') THEN NULL ELSE COALESCE($4, error) END,
    attempts = CASE WHEN $2 IN ('pending', 'processing') THEN 0 ELSE attempts END,
    next_attempt_at = CASE WHEN $2 IN ('pending', 'processing') THEN NULL ELSE next_attempt_at END,
    completed_at = CASE WHEN $2 IN ('completed', 'failed', 'cancelled')
                        THEN COALESCE($5, completed_at, now()) ELSE NULL END,
    eta_seconds = CASE WHEN $2 IN ('pending', 'processing') THEN eta_seconds ELSE NULL END,
    estimated_completion = CASE WHEN $2 IN ('pending', 'processing')
                                THEN estimated_completion ELSE NULL END,
    updated_at = now()
WHERE id = $1 AND status = ANY($3::text[])
RETURNING *;

-- notify_job --
-- Wake the workers: a job became runnable.
SELECT pg_notify('chunkmatch_jobs', $1::text);

-- record_chunk_error --
-- A chunk failed unexpectedly: count the attempt, then back off until $3 seconds from now,
-- or fail the job for good once it has used its attempts.
UPDATE matching_jobs
SET attempts = attempts + 1,
    error = $2,
    status = CASE WHEN attempts + 1 >= max_attempts THEN 'failed' ELSE status END,
    completed_at = CASE WHEN attempts + 1 >= max_attempts THEN now() ELSE completed_at END,
    next_attempt_at = CASE WHEN attempts + 1 >= max_attempts THEN NULL
                           ELSE now() + make_interval(secs => $3) END,
    eta_seconds = CASE WHEN attempts + 1 >= max_attempts THEN NULL ELSE eta_seconds END,
    estimated_completion = CASE WHEN attempts + 1 >= max_attempts THEN NULL
                                ELSE estimated_completion END,
    updated_at = now()
WHERE id = $1 AND status IN ('pending', 'processing')
RETURNING *;

-- runnable_jobs --
-- Jobs a server-side driver may advance now, most important first.
SELECT id FROM matching_jobs
WHERE status IN ('pending', 'processing')
  AND (next_attempt_at IS NULL OR next_attempt_at <= now())
ORDER BY priority DESC, created_at, id
LIMIT $1;

-- next_retry_at --
-- When the earliest job waiting out a retry backoff becomes runnable.
SELECT min(next_attempt_at) FROM matching_jobs
WHERE status IN ('pending', 'processing') AND next_attempt_at > now();

-- job_counts --
-- Every job by status (the metrics' chunkmatch_jobs gauge: the same from every process).
SELECT status, count(*)::int AS n FROM matching_jobs GROUP BY status;

-- jobs_summary --
-- Counts by status, oldest pending job's age, success rate, average duration, of the jobs
-- owner $1 may see (NULL: all).
WITH scoped AS (
    SELECT j.status, j.created_at, j.started_at, j.completed_at
    FROM matching_jobs j JOIN projects p ON p.id = j.project_id
    WHERE $1::text IS NULL OR p.owner = $1
)
SELECT
    (SELECT jsonb_object_agg(status, n)
     FROM (SELECT status, count(*) AS n FROM scoped GROUP BY status) s) AS counts,
    (SELECT extract(epoch FROM now() - min(created_at))::float8
     FROM scoped WHERE status = 'pending') AS oldest_pending_seconds,
    (SELECT count(*) FILTER (WHERE status = 'completed')::float8
            / NULLIF(count(*) FILTER (WHERE status IN ('completed', 'failed')), 0)
     FROM scoped) AS success_rate,
    (SELECT avg(extract(epoch FROM completed_at - started_at))::float8
     FROM scoped WHERE status = 'completed' AND started_at IS NOT NULL)
        AS average_duration_seconds;

-- delete_finished_jobs --
-- Retention: remove finished jobs older than $1 days (of owner $2; NULL: all), with their
-- items, chunks and matches.
WITH gone AS (
    DELETE FROM matching_jobs j
    WHERE j.status IN ('completed', 'failed', 'cancelled')
      AND COALESCE(j.completed_at, j.updated_at) < now() - make_interval(days => $1)
      AND ($2::text IS NULL
           OR EXISTS (SELECT 1 FROM projects p WHERE p.id = j.project_id AND p.owner = $2))
    RETURNING j.id
)
SELECT count(*) FROM gone;

-- async_commit --
-- This transaction's commit does not wait for its WAL to reach the disk (the chunk path:
-- see Store.claim_chunk). Visible to every session at once as usual; a crash of
-- PostgreSQL itself may undo the last few such commits (at most 3 x wal_writer_delay),
-- never part of one, and any later durable commit makes them durable too.
SET LOCAL synchronous_commit = off;

-- durable_commit --
-- This transaction's commit waits for the disk after all, as the server's settings say (a
-- chunk commit that ends its job).
SET LOCAL synchronous_commit TO DEFAULT;

-- claim_chunk --
-- Lease the job's next chunk to a driver, in one statement: the oldest chunk whose lease ran
-- out (a crashed or stalled driver's) first, else the next range of the job's items. The
-- picks are CTEs (each evaluated once), not LIMIT subqueries inside an UPDATE.
WITH job AS (
    SELECT id, claimed_items, stage_total, chunk_size, next_chunk_seq, current_stage
    FROM matching_jobs
    WHERE id = $1 AND status IN ('pending', 'processing')
      AND (next_attempt_at IS NULL OR next_attempt_at <= now())
    FOR UPDATE
), expired AS (
    SELECT c.seq FROM job_chunks c
    WHERE c.job_id = (SELECT id FROM job) AND c.status = 'running'
      AND c.lease_expires_at < now()
    ORDER BY c.seq
    LIMIT 1
    FOR UPDATE SKIP LOCKED
), reclaimed AS (
    UPDATE job_chunks c
    SET lease_owner = $2,
        lease_expires_at = now() + make_interval(secs => $3),
        attempts = c.attempts + 1,
        started_at = now()
    FROM expired
    WHERE c.job_id = $1 AND c.seq = expired.seq
    RETURNING c.seq, c.stage, c.ord_from, c.ord_to
), advanced AS (
    UPDATE matching_jobs j
    SET claimed_items = LEAST(job.stage_total, job.claimed_items + job.chunk_size),
        next_chunk_seq = job.next_chunk_seq + 1,
        status = CASE WHEN j.status = 'pending' THEN 'processing' ELSE j.status END,
        started_at = COALESCE(j.started_at, now()),
        updated_at = now()
    FROM job
    WHERE j.id = job.id
      AND job.claimed_items < job.stage_total
      AND NOT EXISTS (SELECT 1 FROM reclaimed)
    RETURNING job.next_chunk_seq AS seq, job.current_stage AS stage,
              job.claimed_items AS ord_from, j.claimed_items AS ord_to
), inserted AS (
    INSERT INTO job_chunks (job_id, seq, stage, ord_from, ord_to, lease_owner, lease_expires_at)
    SELECT $1, seq, stage, ord_from, ord_to, $2, now() + make_interval(secs => $3)
    FROM advanced
    RETURNING seq, stage, ord_from, ord_to
)
SELECT seq, stage, ord_from, ord_to FROM reclaimed
UNION ALL
SELECT seq, stage, ord_from, ord_to FROM inserted;

-- renew_lease --
-- A long chunk keeps its lease while it runs (only while it still holds it).
UPDATE job_chunks SET lease_expires_at = now() + make_interval(secs => $4)
WHERE job_id = $1 AND seq = $2 AND lease_owner = $3 AND status = 'running'
  AND lease_expires_at > now()
RETURNING seq;

-- count_running_chunks --
-- Chunks some driver holds right now.
SELECT count(*) FROM job_chunks WHERE job_id = $1 AND status = 'running';

-- complete_job --
-- The last stage is done: the job is complete, with the accuracy of the ETAs it gave.
UPDATE matching_jobs
SET status = 'completed',
    progress_percentage = CASE WHEN total_items = 0 THEN 100
                               ELSE processed_items * 100.0 / total_items END,
    started_at = COALESCE(started_at, now()),
    completed_at = now(),
    eta_seconds = 0,
    estimated_completion = now(),
    waiting_reason = NULL,
    updated_at = now(),
    eta_error_10 = chunkmatch_eta_error(id, total_items, 0.1, now()),
    eta_error_50 = chunkmatch_eta_error(id, total_items, 0.5, now()),
    eta_error_90 = chunkmatch_eta_error(id, total_items, 0.9, now())
WHERE id = $1 AND status IN ('pending', 'processing', 'paused')
RETURNING *;

-- lock_job --
-- The job's row, locked for the rest of the transaction.
SELECT * FROM matching_jobs WHERE id = $1 FOR UPDATE;

-- start_stage --
-- Queue the next stage: the job's items it has neither matched nor given up on.
INSERT INTO job_items (job_id, stage, ord, item_id)
SELECT $1, $2, row_number() OVER (ORDER BY ji.ord), ji.item_id
FROM job_items ji
WHERE ji.job_id = $1 AND ji.stage = 1
  AND NOT EXISTS (SELECT 1 FROM matches m WHERE m.job_id = $1 AND m.item_id = ji.item_id)
  AND NOT EXISTS (SELECT 1 FROM job_items f
                  WHERE f.job_id = $1 AND f.item_id = ji.item_id AND f.status = 'failed')
  AND NOT EXISTS (SELECT 1 FROM review_decisions d JOIN matching_jobs j ON j.id = $1
                  WHERE d.project_id = j.project_id AND d.item_id = ji.item_id);

-- enter_stage --
-- Make the queued stage current.
UPDATE matching_jobs
SET current_stage = $2, current_stage_name = $3, chunk_size = $4, stage_total = $5,
    stage_processed = 0, claimed_items = 0, updated_at = now()
WHERE id = $1
RETURNING *;

-- requeue_items --
-- Items a chunk could not decide in time (or, one-to-one, that lost their record to a
-- better item) go to the end of the stage's queue.
WITH moved AS (
    UPDATE job_items SET status = 'requeued'
    WHERE job_id = $1 AND stage = $2 AND item_id = ANY($4::text[]) AND status = 'queued'
      AND ord > $5 AND ord <= $6
    RETURNING item_id
)
INSERT INTO job_items (job_id, stage, ord, item_id)
SELECT $1, $2, $3 + row_number() OVER (ORDER BY item_id), item_id FROM moved;

-- fail_items --
-- Items given up on, with their last error.
UPDATE job_items SET status = 'failed', error = e.error
FROM unnest($4::text[], $5::text[]) AS e(item_id, error)
WHERE job_items.job_id = $1 AND job_items.stage = $2 AND job_items.item_id = e.item_id
  AND job_items.ord > $3 AND job_items.ord <= $6;

-- failed_items --
-- A job's failed items, with their errors.
SELECT ji.item_id, ji.stage, ji.error FROM job_items ji
WHERE ji.job_id = $1 AND ji.status = 'failed'
ORDER BY ji.stage, ji.ord;

-- job_chunks --
-- A job's chunks after seq $2, in order, at most $3: timings, counts, the ETA each gave.
SELECT seq, stage, status, items, matches, started_at, finished_at, duration_ms,
       eta_seconds, processed_items
FROM job_chunks
WHERE job_id = $1 AND seq > $2
ORDER BY seq
LIMIT $3;

-- retry_failed_items --
-- Put a job's failed items back in its current stage's queue.
WITH failed AS (
    UPDATE job_items SET status = 'requeued'
    WHERE job_id = $1 AND status = 'failed'
    RETURNING item_id
)
INSERT INTO job_items (job_id, stage, ord, item_id)
SELECT $1, $2, $3 + row_number() OVER (ORDER BY item_id), item_id FROM failed;

-- reopen_for_failed --
-- The job takes its failed items again: they are no longer processed nor failed.
UPDATE matching_jobs
SET stage_total = stage_total + $2,
    processed_items = processed_items - $2,
    failed_items = failed_items - $2,
    progress_percentage = CASE WHEN total_items = 0 THEN 100
                               ELSE (processed_items - $2) * 100.0 / total_items END,
    status = CASE WHEN status IN ('completed', 'failed') THEN 'processing' ELSE status END,
    completed_at = NULL, error = NULL, attempts = 0, next_attempt_at = NULL,
    updated_at = now()
WHERE id = $1
RETURNING *;

-- get_cached_answers --
-- Stored LLM answers for these questions.
SELECT key, catalog_id, confidence, reason FROM llm_cache WHERE key = ANY($1::text[]);

-- put_cached_answers --
-- Store LLM answers (first answer wins).
INSERT INTO llm_cache (key, catalog_id, confidence, reason)
SELECT * FROM unnest($1::text[], $2::text[], $3::float8[], $4::text[])
ON CONFLICT (key) DO NOTHING;

-- chunk_items --
-- The chunk's items, in order, with the text of the job's match fields at its items version $7.
SELECT ji.item_id, chunkmatch_text(i.data, $4::text[]) AS text
FROM job_items ji
JOIN items i ON i.project_id = $5 AND i.item_id = ji.item_id
    AND i.version_from <= $7 AND (i.version_to IS NULL OR i.version_to > $7)
WHERE ji.job_id = $1 AND ji.stage = $6 AND ji.ord > $2 AND ji.ord <= $3
ORDER BY ji.ord;

-- drop_record_decisions --
-- The reviewers' decisions about one item ($3 = 'items') or catalog record ($3 = 'catalog')
-- of project $1, before the record is deleted: a deleted record's item is undecided again.
DELETE FROM review_decisions d
WHERE d.project_id = $1
  AND (($3 = 'items' AND d.item_id = $2) OR ($3 = 'catalog' AND d.catalog_id = $2));

-- job_item_text --
-- One item of a job (NULL when the job does not hold it), with the text of the job's fields
-- at its items version $5.
SELECT chunkmatch_text(i.data, $4::text[]) AS text
FROM job_items ji
JOIN items i ON i.project_id = $3 AND i.item_id = ji.item_id
    AND i.version_from <= $5 AND (i.version_to IS NULL OR i.version_to > $5)
WHERE ji.job_id = $1 AND ji.item_id = $2
LIMIT 1;

-- item_texts --
-- Every item of a project at items version $3 with the text of the given fields (the peers).
SELECT i.item_id AS record_id, chunkmatch_text(i.data, $2::text[]) AS text
FROM items i
WHERE i.project_id = $1 AND i.version_from <= $3 AND (i.version_to IS NULL OR i.version_to > $3)
ORDER BY i.seq;

-- project_versions --
-- The project's catalog and items versions (each bumped by an upload of its kind).
SELECT catalog_version, items_version FROM projects WHERE id = $1;

-- catalog_texts --
-- Every catalog record of a project at catalog version $3 with the text of the given fields
-- (for the index).
SELECT c.record_id, chunkmatch_text(c.data, $2::text[]) AS text
FROM catalog_records c
WHERE c.project_id = $1 AND c.version_from <= $3 AND (c.version_to IS NULL OR c.version_to > $3);

-- chunk_item_ids --
-- The ids of the chunk's items, in order (their texts come from the job's peers in memory).
SELECT ji.item_id
FROM job_items ji
WHERE ji.job_id = $1 AND ji.stage = $4 AND ji.ord > $2 AND ji.ord <= $3
ORDER BY ji.ord;

-- finish_chunk --
-- Compare-and-set on the lease: only the driver still holding it may commit the chunk
-- ($6: milliseconds of it spent building the index or peers).
UPDATE job_chunks
SET status = 'done',
    items = $4,
    matches = $5,
    prepare_ms = $6,
    finished_at = now(),
    duration_ms = GREATEST(0, round(extract(epoch FROM clock_timestamp() - started_at) * 1000))::integer
WHERE job_id = $1 AND seq = $2 AND status = 'running'
  AND lease_owner = $3 AND lease_expires_at > now()
RETURNING stage;

-- insert_matches --
-- A chunk's matches; an item is matched at most once per job, and never when a reviewer
-- has decided it (the decision wins).
WITH ins AS (
    INSERT INTO matches (job_id, project_id, item_id, catalog_id, score, method, reason,
                         explanation, stage, chunk_seq)
    SELECT $1, $2, m.item_id, m.catalog_id, m.score, m.method, m.reason, m.explanation::jsonb,
           $3, $4
    FROM unnest($5::text[], $6::text[], $7::float8[], $8::text[], $9::text[], $10::text[])
         AS m(item_id, catalog_id, score, method, reason, explanation)
    WHERE NOT EXISTS (SELECT 1 FROM review_decisions d
                      WHERE d.project_id = $2 AND d.item_id = m.item_id)
    ON CONFLICT (job_id, item_id) DO NOTHING
    RETURNING 1
)
SELECT count(*) FROM ins;

-- insert_matches_one_to_one --
-- A chunk's matches when each catalog record may be used once per job: per record the best
-- score wins, here and against earlier chunks (whose weaker matches are displaced); items a
-- reviewer has decided are left as decided, and a reviewer's match is never displaced.
WITH incoming AS (
    SELECT DISTINCT ON (m.catalog_id) m.*
    FROM unnest($5::text[], $6::text[], $7::float8[], $8::text[], $9::text[], $10::text[])
         AS m(item_id, catalog_id, score, method, reason, explanation)
    WHERE NOT EXISTS (SELECT 1 FROM review_decisions d
                      WHERE d.project_id = $2 AND d.item_id = m.item_id)
    ORDER BY m.catalog_id, m.score DESC, m.item_id
), displaced AS (
    DELETE FROM matches old USING incoming i
    WHERE old.job_id = $1 AND old.catalog_id = i.catalog_id AND old.score < i.score
      AND old.method <> 'human'
    RETURNING old.item_id
), ins AS (
    INSERT INTO matches (job_id, project_id, item_id, catalog_id, score, method, reason,
                         explanation, stage, chunk_seq)
    SELECT $1, $2, i.item_id, i.catalog_id, i.score, i.method, i.reason, i.explanation::jsonb,
           $3, $4
    FROM incoming i
    WHERE NOT EXISTS (SELECT 1 FROM matches old
                      WHERE old.job_id = $1 AND old.catalog_id = i.catalog_id
                        AND old.score >= i.score)
    ON CONFLICT (job_id, item_id) DO NOTHING
    RETURNING item_id
)
SELECT ARRAY(SELECT item_id FROM ins) AS inserted, ARRAY(SELECT item_id FROM displaced) AS displaced;

-- held_records --
-- The best score with which a one-to-one job holds each of some catalog records.
SELECT catalog_id, max(score) AS score
FROM matches
WHERE job_id = $1 AND catalog_id = ANY($2::text[]) AND NOT stale
GROUP BY catalog_id;

-- advance_job --
-- Progress after a chunk: counts, usage and percentage (the rate and ETA follow, by
-- set_job_eta). A provider that asked us to wait ($13 seconds, $14 why) holds the job
-- until then.
-- Counters are computed from j itself, not from a CTE: under concurrent commits the UPDATE
-- re-reads the latest row version, a CTE's snapshot would lose the other commits' counts.
UPDATE matching_jobs j
SET processed_items = j.processed_items + $2,
    matches_found = j.matches_found + $3,
    stage_processed = j.stage_processed + $4,
    stage_total = j.stage_total + $5,
    failed_items = j.failed_items + $6,
    llm_requests = j.llm_requests + $7,
    prompt_tokens = j.prompt_tokens + $8,
    completion_tokens = j.completion_tokens + $9,
    cache_hits = j.cache_hits + $10,
    search_requests = j.search_requests + $11,
    estimated_cost_usd = j.estimated_cost_usd + $12,
    progress_percentage = CASE WHEN j.total_items = 0 THEN 100
                               ELSE (j.processed_items + $2) * 100.0 / j.total_items END,
    match_rate = CASE WHEN j.processed_items + $2 = 0 THEN 0
                      ELSE (j.matches_found + $3) * 100.0 / (j.processed_items + $2) END,
    status = CASE WHEN j.status = 'pending' THEN 'processing' ELSE j.status END,
    attempts = 0,
    next_attempt_at = CASE WHEN $13::float8 IS NULL THEN NULL
                           ELSE now() + make_interval(secs => $13) END,
    waiting_reason = $14,
    error = CASE WHEN j.status IN ('pending', 'processing') THEN NULL ELSE j.error END,
    preparation = NULL,
    updated_at = now()
WHERE j.id = $1
RETURNING j.*;

-- stage_chunk_timings --
-- The latest ($4) committed chunks of a job's stage $2 with their timings (epoch seconds),
-- for its rate (service/eta.py); warmup: one of the stage's first $3 chunks.
SELECT c.items,
       extract(epoch FROM c.started_at)::float8 AS started,
       extract(epoch FROM c.finished_at)::float8 AS finished,
       COALESCE(c.prepare_ms, 0) / 1000.0::float8 AS prepare_seconds,
       c.seq < (SELECT min(f.seq) FROM job_chunks f WHERE f.job_id = $1 AND f.stage = $2) + $3
           AS warmup
FROM job_chunks c
WHERE c.job_id = $1 AND c.stage = $2 AND c.status = 'done'
ORDER BY c.finished_at DESC, c.seq DESC
LIMIT $4;

-- set_job_eta --
-- The rate ($4 items/s) and ETA ($3 seconds, NULL: unknown) after chunk $2 of job $1; the
-- chunk records the ETA it gave and the job's processed items then.
WITH chunk AS (
    UPDATE job_chunks c
    SET eta_seconds = $3,
        processed_items = (SELECT processed_items FROM matching_jobs WHERE id = $1)
    WHERE c.job_id = $1 AND c.seq = $2
)
UPDATE matching_jobs
SET items_per_second = $4,
    eta_seconds = $3,
    estimated_completion = now() + make_interval(secs => $3::float8)
WHERE id = $1
RETURNING *;

-- mark_stale_matches --
-- A chunk's new matches (items $2) made on data that has changed since the job's versions
-- are stale at once: the item or record text (on the job's fields) is no longer what the
-- job matched.
UPDATE matches m SET stale = true
FROM matching_jobs j
WHERE m.job_id = $1 AND m.item_id = ANY($2::text[]) AND j.id = $1 AND NOT m.stale
  AND EXISTS (SELECT 1 FROM projects p WHERE p.id = j.project_id
              AND (p.catalog_version <> j.catalog_version OR p.items_version <> j.items_version))
  AND ((SELECT chunkmatch_text(i.data, chunkmatch_fields(j.config, 'itemFields')) FROM items i
        WHERE i.project_id = m.project_id AND i.item_id = m.item_id AND i.version_to IS NULL)
       IS DISTINCT FROM
       (SELECT chunkmatch_text(i.data, chunkmatch_fields(j.config, 'itemFields')) FROM items i
        WHERE i.project_id = m.project_id AND i.item_id = m.item_id
          AND i.version_from <= j.items_version
          AND (i.version_to IS NULL OR i.version_to > j.items_version))
    OR (SELECT chunkmatch_text(c.data, chunkmatch_fields(j.config, 'catalogFields'))
        FROM catalog_records c
        WHERE c.project_id = m.project_id AND c.record_id = m.catalog_id AND c.version_to IS NULL)
       IS DISTINCT FROM
       (SELECT chunkmatch_text(c.data, chunkmatch_fields(j.config, 'catalogFields'))
        FROM catalog_records c
        WHERE c.project_id = m.project_id AND c.record_id = m.catalog_id
          AND c.version_from <= j.catalog_version
          AND (c.version_to IS NULL OR c.version_to > j.catalog_version)));

-- release_chunk --
-- Give a chunk back (its driver failed): another driver may take it at once.
UPDATE job_chunks SET lease_expires_at = now() - interval '1 second'
WHERE job_id = $1 AND seq = $2 AND status = 'running' AND lease_owner = $3;

-- job_matches_page --
-- A page of a job's matches (keyset on match id, index matches_job_order), with the texts of
-- the job's fields as the job saw them (its items version $6 and catalog version $7), and
-- their explanations unless $8 is false (the CSV has none). The page is chosen first
-- (MATERIALIZED), the texts joined to its rows only: while the tables had no statistics yet
-- (right after a 100k job) the planner joined all of the job's later matches, then sorted.
WITH page AS MATERIALIZED (
    SELECT * FROM matches m WHERE m.job_id = $1 AND m.id > $2 ORDER BY m.id LIMIT $3
)
SELECT m.id, m.item_id, m.catalog_id, m.score, m.method, m.reason,
       CASE WHEN $8::boolean THEN m.explanation END AS explanation, m.stage,
       m.created_at,
       EXISTS (SELECT 1 FROM review_decisions d
               WHERE d.project_id = m.project_id AND d.item_id = m.item_id) AS reviewed,
       chunkmatch_text(i.data, $4::text[]) AS item_text,
       chunkmatch_text(c.data, $5::text[]) AS catalog_text
FROM page m
LEFT JOIN items i ON i.project_id = m.project_id AND i.item_id = m.item_id
    AND i.version_from <= $6 AND (i.version_to IS NULL OR i.version_to > $6)
LEFT JOIN catalog_records c ON c.project_id = m.project_id AND c.record_id = m.catalog_id
    AND c.version_from <= $7 AND (c.version_to IS NULL OR c.version_to > $7)
ORDER BY m.id;

-- lock_migrations --
-- One migrating process at a time.
SELECT pg_advisory_lock($1);

-- unlock_migrations --
-- Let the next process migrate (it will find nothing to do).
SELECT pg_advisory_unlock($1);

-- create_migrations_table --
-- Which numbered migrations this database has seen.
CREATE TABLE IF NOT EXISTS schema_migrations (
    version integer PRIMARY KEY,
    name text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);

-- applied_migrations --
-- Versions already applied.
SELECT version FROM schema_migrations;

-- record_migration --
-- Remember an applied migration.
INSERT INTO schema_migrations (version, name) VALUES ($1, $2);

-- insert_token --
-- A new API token (its hash only).
INSERT INTO api_tokens (owner, token_hash, prefix, is_admin) VALUES ($1, $2, $3, $4)
RETURNING id, owner, prefix, is_admin, created_at, revoked_at;

-- token_principal --
-- Who a live token belongs to.
SELECT owner, is_admin FROM api_tokens WHERE token_hash = $1 AND revoked_at IS NULL;

-- list_tokens --
-- Every token, newest first (never the token itself).
SELECT id, owner, prefix, is_admin, created_at, revoked_at FROM api_tokens
ORDER BY created_at DESC;

-- revoke_token --
-- Revoke by id or by the shown prefix.
UPDATE api_tokens SET revoked_at = now()
WHERE (id::text = $1 OR prefix = $1) AND revoked_at IS NULL
RETURNING id, owner, prefix, is_admin, created_at, revoked_at;

-- count_tokens --
-- How many tokens exist (revoked included).
SELECT count(*) FROM api_tokens;

-- reserve_budget --
-- Take room for $2 requests and $3 tokens in this minute's window of provider $1, if that
-- keeps it within $4 requests and $5 tokens per minute (0: no limit); a row back means taken.
INSERT INTO provider_budget AS b (provider, window_start, requests, tokens)
SELECT $1, date_trunc('minute', now()), $2::integer, $3::bigint
WHERE ($4::integer = 0 OR $2::integer <= $4::integer)
  AND ($5::bigint = 0 OR $3::bigint <= $5::bigint)
ON CONFLICT (provider, window_start) DO UPDATE
SET requests = b.requests + EXCLUDED.requests, tokens = b.tokens + EXCLUDED.tokens
WHERE ($4::integer = 0 OR b.requests + EXCLUDED.requests <= $4::integer)
  AND ($5::bigint = 0 OR b.tokens + EXCLUDED.tokens <= $5::bigint)
RETURNING requests;

-- seconds_to_next_window --
-- How long until the next minute's budget window opens.
SELECT extract(epoch FROM date_trunc('minute', now()) + interval '1 minute' - now())::float8;

-- prune_budget --
-- Forget budget windows older than an hour.
DELETE FROM provider_budget WHERE window_start < now() - interval '1 hour';

-- live_jobs_of_project --
-- The project's jobs that are not finished (they hold up its deletion).
SELECT id FROM matching_jobs
WHERE project_id = $1 AND status IN ('pending', 'processing', 'paused')
ORDER BY created_at;

-- cancel_live_jobs --
-- Cancel the project's unfinished jobs (their in-flight chunks do not commit).
UPDATE matching_jobs
SET status = 'cancelled', completed_at = now(), eta_seconds = NULL,
    estimated_completion = NULL, updated_at = now()
WHERE project_id = $1 AND status IN ('pending', 'processing', 'paused');

-- delete_project --
-- A project and everything that names it: records, jobs, their items, chunks and matches.
DELETE FROM projects WHERE id = $1 RETURNING id;

-- drop_record_matches --
-- The matches of one item ($3 = 'items') or catalog record ($3 = 'catalog') and an item's
-- places in jobs, before the record is deleted; the jobs' counts of matches and failed
-- items go down with them (a deleted record's matched items are unmatched again).
WITH gone_matches AS (
    DELETE FROM matches m
    WHERE m.project_id = $1
      AND (($3 = 'items' AND m.item_id = $2) OR ($3 = 'catalog' AND m.catalog_id = $2))
    RETURNING m.job_id
), gone_places AS (
    DELETE FROM job_items ji USING matching_jobs j
    WHERE $3 = 'items' AND j.project_id = $1 AND ji.job_id = j.id AND ji.item_id = $2
    RETURNING ji.job_id, ji.status
), per_job AS (
    SELECT job_id, sum(matched)::integer AS matched, sum(failed)::integer AS failed
    FROM (SELECT job_id, 1 AS matched, 0 AS failed FROM gone_matches
          UNION ALL
          SELECT job_id, 0, 1 FROM gone_places WHERE status = 'failed') AS x
    GROUP BY job_id
)
UPDATE matching_jobs j
SET matches_found = j.matches_found - p.matched,
    failed_items = j.failed_items - p.failed,
    match_rate = CASE WHEN j.processed_items = 0 THEN 0
                      ELSE (j.matches_found - p.matched) * 100.0 / j.processed_items END,
    updated_at = now()
FROM per_job p WHERE j.id = p.job_id;

-- delete_item --
-- Every version of one item.
DELETE FROM items WHERE project_id = $1 AND item_id = $2;

-- delete_catalog_record --
-- Every version of one catalog record.
DELETE FROM catalog_records WHERE project_id = $1 AND record_id = $2;

-- bump_catalog_version --
-- The catalog changed without an upload (a record deleted): indexes are rebuilt.
UPDATE projects SET catalog_version = catalog_version + 1 WHERE id = $1;

-- bump_items_version --
-- The items changed without an upload (an item deleted): peers are rebuilt.
UPDATE projects SET items_version = items_version + 1 WHERE id = $1;

-- job_snapshots --
-- The jobs of ids $1 with their project's owner (what a process keeps in memory).
SELECT j.*, p.owner FROM matching_jobs j
JOIN projects p ON p.id = j.project_id
WHERE j.id = ANY($1::uuid[]);

-- insert_event_ticket --
-- A short-lived ticket (by hash) to open job $2's event stream as token $3, until $4 s from now.
WITH pruned AS (DELETE FROM event_tickets WHERE expires_at < now() - interval '1 minute')
INSERT INTO event_tickets (ticket_hash, job_id, token_hash, expires_at)
VALUES ($1, $2, $3, now() + make_interval(secs => $4))
RETURNING expires_at;

-- event_ticket_principal --
-- Who ticket $1 acts for (and with which token), if it is unexpired, for job $2, and its
-- token is live.
SELECT t.owner, t.is_admin, t.token_hash FROM event_tickets e
JOIN api_tokens t ON t.token_hash = e.token_hash AND t.revoked_at IS NULL
WHERE e.ticket_hash = $1 AND e.job_id = $2 AND e.expires_at > now();

-- clock_now --
-- The database's clock now (not the transaction's start), in epoch seconds.
SELECT extract(epoch FROM clock_timestamp())::float8;

-- create_webhook --
-- A project's new webhook, unless the project already has $5 of them.
INSERT INTO webhooks (project_id, url, events, secret)
SELECT $1, $2, $3::text[], $4
WHERE (SELECT count(*) FROM webhooks WHERE project_id = $1) < $5
RETURNING id, project_id, url, events, created_at;

-- list_webhooks --
-- A project's webhooks, oldest first (never their secrets).
SELECT id, project_id, url, events, created_at FROM webhooks
WHERE project_id = $1
ORDER BY created_at, id;

-- get_webhook --
-- One webhook of project $1 (never its secret).
SELECT id, project_id, url, events, created_at FROM webhooks
WHERE project_id = $1 AND id = $2;

-- delete_webhook --
-- Remove a project's webhook with its deliveries (pending ones are never sent).
DELETE FROM webhooks WHERE project_id = $1 AND id = $2 RETURNING id;

-- webhook_deliveries --
-- A webhook's deliveries, newest first, before delivery id $2 (NULL: from the newest), at most $3.
SELECT d.id, d.event_id, d.event_type, d.job_id, d.status, d.attempts, d.status_code, d.error,
       d.next_attempt_at, d.created_at, d.last_attempt_at, d.delivered_at
FROM webhook_deliveries d
WHERE d.webhook_id = $1 AND ($2::bigint IS NULL OR d.id < $2)
ORDER BY d.id DESC
LIMIT $3;

-- claim_webhook_deliveries --
-- Lease up to $1 due deliveries to owner $2 for $3 seconds, in one statement: pending, due,
-- not leased by a live owner, and the oldest pending event of their job for their webhook
-- (a job's later event waits for the earlier one). Each is counted as an attempt.
WITH due AS (
    SELECT d.id FROM webhook_deliveries d
    WHERE d.status = 'pending' AND d.next_attempt_at <= now()
      AND (d.lease_expires_at IS NULL OR d.lease_expires_at < now())
      AND NOT EXISTS (
          SELECT 1 FROM webhook_deliveries e
          WHERE e.webhook_id = d.webhook_id AND e.job_id = d.job_id
            AND e.status = 'pending' AND e.event_seq < d.event_seq)
    ORDER BY d.next_attempt_at, d.event_seq
    LIMIT $1
    FOR UPDATE SKIP LOCKED
), claimed AS (
    UPDATE webhook_deliveries d
    SET lease_owner = $2,
        lease_expires_at = now() + make_interval(secs => $3),
        attempts = d.attempts + 1,
        last_attempt_at = now()
    FROM due
    WHERE d.id = due.id
    RETURNING d.id, d.webhook_id, d.event_id, d.attempts, d.created_at
)
-- The job's columns come last, as the event's snapshot (prefixed names come first).
SELECT c.id AS delivery_id, c.attempts AS delivery_attempts, c.created_at AS delivery_created_at,
       w.url AS webhook_url, w.secret AS webhook_secret, e.id AS event_id,
       e.type AS event_type, e.stage AS event_stage, e.created_at AS event_created_at, j.*
FROM claimed c
JOIN webhooks w ON w.id = c.webhook_id
JOIN webhook_events e ON e.id = c.event_id
CROSS JOIN LATERAL jsonb_populate_record(NULL::matching_jobs, e.job) AS j
ORDER BY e.seq;

-- webhook_delivered --
-- An attempt succeeded (only its lease holder may say so).
UPDATE webhook_deliveries
SET status = 'delivered', status_code = $3, error = NULL, delivered_at = now(),
    lease_owner = NULL, lease_expires_at = NULL
WHERE id = $1 AND lease_owner = $2 AND status = 'pending'
RETURNING id;

-- webhook_attempt_failed --
-- An attempt failed ($3 status code or NULL, $4 why): try again in $5 seconds, or give up
-- once the delivery is older than $6 seconds.
UPDATE webhook_deliveries
SET status_code = $3,
    error = $4,
    status = CASE WHEN now() - created_at >= make_interval(secs => $6) THEN 'failed'
                  ELSE status END,
    next_attempt_at = CASE WHEN now() - created_at >= make_interval(secs => $6) THEN next_attempt_at
                           ELSE now() + make_interval(secs => $5) END,
    lease_owner = NULL, lease_expires_at = NULL
WHERE id = $1 AND lease_owner = $2 AND status = 'pending'
RETURNING status;

-- next_webhook_attempt_at --
-- When the earliest delivery that may be claimed is due (its job's oldest pending event for
-- its webhook; a leased one once its lease runs out).
SELECT min(GREATEST(d.next_attempt_at, COALESCE(d.lease_expires_at, d.next_attempt_at)))
FROM webhook_deliveries d
WHERE d.status = 'pending'
  AND NOT EXISTS (
      SELECT 1 FROM webhook_deliveries e
      WHERE e.webhook_id = d.webhook_id AND e.job_id = d.job_id
        AND e.status = 'pending' AND e.event_seq < d.event_seq);

-- prune_webhook_deliveries --
-- Forget deliveries finished more than $1 days ago, and older events no delivery needs.
WITH gone AS (
    DELETE FROM webhook_deliveries
    WHERE status <> 'pending'
      AND COALESCE(delivered_at, last_attempt_at, created_at) < now() - make_interval(days => $1)
    RETURNING id
)
DELETE FROM webhook_events e
WHERE e.created_at < now() - make_interval(days => $1)
  AND NOT EXISTS (SELECT 1 FROM webhook_deliveries d
                  WHERE d.event_id = e.id AND d.id NOT IN (SELECT id FROM gone));

-- insert_review_queue --
-- A chunk's decisions worth a reviewer's look ($3..$11: item, proposed record, score,
-- matched, error chance, method, reason, explanation and candidates JSON), but not of items
-- decided in the project ($2); an item queued again (one-to-one) replaces its row.
INSERT INTO review_queue (job_id, item_id, catalog_id, score, matched, error_chance, method,
                          reason, explanation, candidates)
SELECT $1, r.item_id, r.catalog_id, r.score, r.matched, r.error_chance, r.method, r.reason,
       r.explanation::jsonb, r.candidates::jsonb
FROM unnest($3::text[], $4::text[], $5::float8[], $6::bool[], $7::float8[], $8::text[],
            $9::text[], $10::text[], $11::text[])
     AS r(item_id, catalog_id, score, matched, error_chance, method, reason, explanation,
          candidates)
WHERE NOT EXISTS (SELECT 1 FROM review_decisions d WHERE d.project_id = $2 AND d.item_id = r.item_id)
ON CONFLICT (job_id, item_id) DO UPDATE
SET catalog_id = EXCLUDED.catalog_id, score = EXCLUDED.score, matched = EXCLUDED.matched,
    error_chance = EXCLUDED.error_chance, method = EXCLUDED.method, reason = EXCLUDED.reason,
    explanation = EXCLUDED.explanation, candidates = EXCLUDED.candidates;

-- plan_for_parameters --
-- Until the transaction's end or reset_plan_cache_mode, plan each statement for its own
-- parameters: a prepared statement's generic plan, taken after five runs, read the job's
-- matches for each record in contested_claims (100-340 ms a chunk at 100k).
SET LOCAL plan_cache_mode = force_custom_plan;

-- reset_plan_cache_mode --
-- Back to the server's choice of plans after plan_for_parameters.
RESET plan_cache_mode;

-- contested_claims --
-- Of records $3 (a chunk's matched records, or the records that decisions gave or took
-- matches), those job $1 (project $2) has a queued match to, and on each the matches that
-- at least $5 items claim, with each one's chance of being wrong judged beside the others
-- (matching.review.contested_error_chance, $4 its allowance; on its own when more than $6
-- items claim the record). The job's queue (a tenth of
-- its items) is read once, with the records hashed; then only the few records it holds are
-- looked up in matches, by the (project_id, catalog_id) index whatever the statistics say,
-- and planned for the records at hand (the store sets plan_cache_mode around it). (An
-- UPDATE joined to an aggregate of the claims took 1-1.3 s a chunk in the middle of a 100k
-- job, its fresh rows unanalysed; this statement's generic plan 100-340 ms.)
WITH queued AS MATERIALIZED (
    SELECT DISTINCT q.catalog_id
    FROM review_queue q
    WHERE q.job_id = $1 AND q.matched AND q.catalog_id = ANY($3::text[])
)
SELECT c.item_id, r.catalog_id,
       round((1 - CASE WHEN x.n > $6 THEN c.score  -- too many claims: judged on its own
                       ELSE chunkmatch_contested_chance(
                           c.score, x.log_free - ln(greatest(1 - c.score, 1e-6)), $4)
                  END)::numeric, 9)::float8 AS error_chance
FROM queued r
CROSS JOIN LATERAL (
    -- the job in the aggregates' FILTER, not the WHERE: only the (project_id, catalog_id)
    -- index can serve the lookup, never the job's (job_id, id) one
    SELECT count(*) FILTER (WHERE mine) AS n,
           sum(ln(greatest(1 - m.score, 1e-6))) FILTER (WHERE mine) AS log_free,
           array_agg(m.item_id) FILTER (WHERE mine) AS items,
           array_agg(m.score) FILTER (WHERE mine) AS scores
    FROM matches m
    CROSS JOIN LATERAL (SELECT m.job_id = $1 AND NOT m.stale AS mine) j
    WHERE m.project_id = $2 AND m.catalog_id = r.catalog_id
) x
CROSS JOIN LATERAL unnest(x.items, x.scores) AS c(item_id, score)
WHERE x.n >= $5;

-- contest_work_mem --
-- Memory for contest_matches' sort of a whole job's claims (95,000 spilled to disk with the
-- default 4 MB), until the transaction's end.
SET LOCAL work_mem = '64MB';

-- contest_matches --
-- When job $1's matching stage $2 has committed its last chunk: each of its matches judged
-- beside the others of its record, those then less likely right than the job's threshold
-- $3 withdrawn (matching.claims.withdraw_contested is the same rule; $4 the least
-- allowance, matching.claims.SHARED_CLAIMS_FLOOR). Matches withdrawn when the stage ended
-- before still count as rivals and towards the allowance. A withdrawn match moves to
-- withdrawn_matches; its queued review row becomes an unmatched item's whose best candidate
-- is right with the withdrawn chance (matching.review.error_chance). How many were withdrawn.
WITH claims AS (
    SELECT m.id, m.catalog_id, m.score
    FROM matches m
    WHERE m.job_id = $1 AND m.stage = $2 AND m.method <> 'human'
    UNION ALL
    SELECT NULL, w.catalog_id, w.score
    FROM withdrawn_matches w
    WHERE w.job_id = $1 AND w.stage = $2
), records AS MATERIALIZED (
    -- window aggregates, not a join of the claims to their records' aggregate: at a 100k
    -- job's end its fresh rows have no statistics, and the planner joined 95,000 claims to
    -- 90,000 records in a nested loop (over 120 s); a sort needs no estimate (in bytes:
    -- the order does not matter, and a collation's compare took a fifth of the time)
    SELECT c.id, c.score,
           count(*) OVER per_record AS n,
           sum(ln(greatest(1 - c.score, 1e-6))) OVER per_record AS log_free
    FROM claims c
    WINDOW per_record AS (PARTITION BY c.catalog_id COLLATE "C")
), allowance AS MATERIALIZED (  -- once (not again for each claim)
    SELECT least(1.0, greatest($4::float8,
                               COALESCE(count(*) FILTER (WHERE n > 1)::float8
                                        / nullif(count(*), 0), 0))) AS share
    FROM records
), judged AS MATERIALIZED (  -- the withdrawn ones, before any of them is looked up
    SELECT c.id, c.chance
    FROM (SELECT r.id,
                 chunkmatch_contested_chance(
                     r.score, r.log_free - ln(greatest(1 - r.score, 1e-6)), a.share) AS chance
          FROM records r
          CROSS JOIN allowance a
          WHERE r.id IS NOT NULL AND r.n > 1 AND r.score < 1) c
    WHERE c.chance < $3
), withdrawn AS (
    DELETE FROM matches m
    USING judged j
    WHERE m.id = j.id
    RETURNING m.item_id, m.catalog_id, m.score, j.chance, m.method, m.reason, m.explanation
), moved AS (
    INSERT INTO withdrawn_matches (job_id, item_id, catalog_id, score, chance, method, reason,
                                   explanation, stage)
    SELECT $1, w.item_id, w.catalog_id, w.score, w.chance, w.method, w.reason, w.explanation, $2
    FROM withdrawn w
    ON CONFLICT (job_id, item_id) DO UPDATE
    SET catalog_id = EXCLUDED.catalog_id, score = EXCLUDED.score, chance = EXCLUDED.chance,
        method = EXCLUDED.method, reason = EXCLUDED.reason,
        explanation = EXCLUDED.explanation, withdrawn_at = now()
), queued AS (
    UPDATE review_queue q
    SET matched = false, explanation = w.explanation,
        error_chance = round(least(1.0, w.chance + COALESCE(
            (SELECT sum((e.pair ->> 1)::float8)
             FROM jsonb_array_elements(q.candidates) WITH ORDINALITY AS e(pair, n)
             WHERE e.n > 1), 0))::numeric, 9)::float8
    FROM withdrawn w
    WHERE q.job_id = $1 AND q.item_id = w.item_id AND q.catalog_id = w.catalog_id AND q.matched
)
SELECT count(*)::integer FROM withdrawn;

-- withdraw_from_counts --
-- Job $1's counts once $2 of its matches are withdrawn, $3 of those items no longer
-- finished (a later stage takes them up).
UPDATE matching_jobs j
SET matches_found = j.matches_found - $2,
    withdrawn_matches = j.withdrawn_matches + $2,
    processed_items = j.processed_items - $3,
    progress_percentage = CASE WHEN j.total_items = 0 THEN 100
                               ELSE (j.processed_items - $3) * 100.0 / j.total_items END,
    match_rate = CASE WHEN j.processed_items - $3 = 0 THEN 0
                      ELSE (j.matches_found - $2) * 100.0 / (j.processed_items - $3) END,
    updated_at = now()
WHERE j.id = $1
RETURNING *;

-- set_review_chances --
-- New error chances ($4) of job $1's queued matches of items $2 to records $3 (rows whose
-- chance is unchanged are left alone: a record's claimants are re-judged at each new claim).
UPDATE review_queue q
SET error_chance = u.error_chance
FROM unnest($2::text[], $3::text[], $4::float8[]) AS u(item_id, catalog_id, error_chance)
WHERE q.job_id = $1 AND q.item_id = u.item_id AND q.matched AND q.catalog_id = u.catalog_id
  AND q.error_chance IS DISTINCT FROM u.error_chance;

-- review_page --
-- A page of job $1's review queue, the decisions most likely wrong first (keyset: error
-- chance $4 and item id $5, both descending), leaving out the items decided in project $2:
-- the job's current match of the item if any (else its best candidate), with the texts of
-- the job's fields ($6 items, $7 catalog) at its versions ($8 items, $9 catalog).
SELECT q.item_id, q.error_chance, q.candidates AS candidate_scores,
       COALESCE(m.catalog_id, q.catalog_id) AS catalog_id,
       COALESCE(m.score, q.score) AS score,
       COALESCE(m.method, q.method) AS method,
       CASE WHEN m.id IS NULL THEN q.reason ELSE m.reason END AS reason,
       CASE WHEN m.id IS NULL THEN q.explanation ELSE m.explanation END AS explanation,
       m.id IS NOT NULL AS matched,
       chunkmatch_text(i.data, $6::text[]) AS item_text,
       -- the records by key (= ANY of an array): an IN (subquery) here became a hash semi join
       -- over all of the project's records per pair while the tables had no statistics yet
       -- (0.9 s a page for the first half minute after a 100k job)
       (SELECT jsonb_object_agg(c.record_id, chunkmatch_text(c.data, $7::text[]))
        FROM catalog_records c
        WHERE c.project_id = $2
          AND c.record_id = ANY (ARRAY(SELECT e ->> 0 FROM jsonb_array_elements(q.candidates) e)
                                 || m.catalog_id)
          AND c.version_from <= $9 AND (c.version_to IS NULL OR c.version_to > $9)) AS texts
FROM review_queue q
LEFT JOIN matches m ON m.job_id = q.job_id AND m.item_id = q.item_id AND NOT m.stale
LEFT JOIN items i ON i.project_id = $2 AND i.item_id = q.item_id
    AND i.version_from <= $8 AND (i.version_to IS NULL OR i.version_to > $8)
WHERE q.job_id = $1 AND (q.error_chance, q.item_id) < ($4::float8, $5::text)
  AND NOT EXISTS (SELECT 1 FROM review_decisions d
                  WHERE d.project_id = $2 AND d.item_id = q.item_id)
ORDER BY q.error_chance DESC, q.item_id DESC
LIMIT $3;

-- review_counts --
-- How many decisions job $1 queued for review, and how many of them are decided in project $2.
SELECT count(*)::integer AS total,
       count(*) FILTER (WHERE EXISTS (SELECT 1 FROM review_decisions d
                                     WHERE d.project_id = $2 AND d.item_id = q.item_id))::integer
           AS decided
FROM review_queue q
WHERE q.job_id = $1;

-- review_unknown --
-- Of decisions' items $2 and records $3, those job $1 does not hold, and those the catalog
-- of project $4 at the job's version $5 lacks.
SELECT ARRAY(SELECT x FROM unnest($2::text[]) x
             EXCEPT SELECT ji.item_id FROM job_items ji
                    WHERE ji.job_id = $1 AND ji.item_id = ANY($2::text[])) AS unknown_items,
       ARRAY(SELECT x FROM unnest($3::text[]) x
             WHERE NOT EXISTS (SELECT 1 FROM catalog_records c
                               WHERE c.project_id = $4 AND c.record_id = x
                                 AND c.version_from <= $5
                                 AND (c.version_to IS NULL OR c.version_to > $5)))
           AS unknown_records;

-- record_decisions --
-- Store reviewer $3's decisions ($4 items, $5 records or NULL, $6 decisions) in project $2,
-- made in job $1, with what the job proposed for each item (its machine match, else the best
-- candidate it queued) and the chance the queue showed that it is right (a match's judged
-- beside the job's other matches of its record, see contested_claims; a withdrawn match's,
-- see contest_matches); an item decided again keeps one row, the latest decision.
INSERT INTO review_decisions (project_id, item_id, catalog_id, decision, decided_by, job_id,
                              proposed_catalog_id, proposed_score, proposed_explanation,
                              proposed_chance)
SELECT $2, d.item_id, d.catalog_id, d.decision, $3, $1,
       COALESCE(m.catalog_id, q.catalog_id), COALESCE(m.score, q.score),
       CASE WHEN m.id IS NOT NULL THEN m.explanation ELSE q.explanation END,
       CASE WHEN m.id IS NULL THEN COALESCE(w.chance, q.score)
            WHEN q.matched AND q.catalog_id = m.catalog_id THEN 1 - q.error_chance
            ELSE m.score END
FROM unnest($4::text[], $5::text[], $6::text[]) AS d(item_id, catalog_id, decision)
LEFT JOIN matches m ON m.job_id = $1 AND m.item_id = d.item_id AND m.method <> 'human'
LEFT JOIN review_queue q ON q.job_id = $1 AND q.item_id = d.item_id
LEFT JOIN withdrawn_matches w ON w.job_id = $1 AND w.item_id = d.item_id
    AND w.catalog_id = q.catalog_id
ON CONFLICT (project_id, item_id) DO UPDATE
SET catalog_id = EXCLUDED.catalog_id, decision = EXCLUDED.decision,
    decided_by = EXCLUDED.decided_by, decided_at = now(), job_id = EXCLUDED.job_id,
    proposed_catalog_id = COALESCE(EXCLUDED.proposed_catalog_id,
                                   review_decisions.proposed_catalog_id),
    proposed_score = COALESCE(EXCLUDED.proposed_score, review_decisions.proposed_score),
    proposed_chance = CASE WHEN EXCLUDED.proposed_score IS NULL
                           THEN review_decisions.proposed_chance
                           ELSE EXCLUDED.proposed_chance END,
    proposed_explanation = COALESCE(EXCLUDED.proposed_explanation,
                                    review_decisions.proposed_explanation)
RETURNING proposed_catalog_id;

-- drop_decided_matches --
-- Job $1's matches that decisions undo: every match of an item decided 'match' ($2, to be
-- replaced), of an item with no counterpart ($3: catalog NULL), and the pairs found wrong
-- ($4 items, $5 records); in a one-to-one job ($7) also other items' machine matches to a
-- record decided a match ($6). How many went.
WITH gone AS (
    DELETE FROM matches m
    WHERE m.job_id = $1
      AND (m.item_id = ANY($2::text[]) OR m.item_id = ANY($3::text[])
           OR (m.item_id, m.catalog_id) IN (SELECT * FROM unnest($4::text[], $5::text[]))
           OR ($7::boolean AND m.catalog_id = ANY($6::text[]) AND m.method <> 'human'))
    RETURNING 1
)
SELECT count(*) FROM gone;

-- insert_decided_matches --
-- The reviewer's ($6) matches ($3 items, $4 records) in job $1 of project $2: method human,
-- score 1.0, at the job's current stage $5; how many.
WITH ins AS (
    INSERT INTO matches (job_id, project_id, item_id, catalog_id, score, method, reason,
                         explanation, stage, chunk_seq)
    SELECT $1, $2, d.item_id, d.catalog_id, 1.0, 'human', 'decided by ' || $6, '[]'::jsonb,
           $5, 0
    FROM unnest($3::text[], $4::text[]) AS d(item_id, catalog_id)
    RETURNING 1
)
SELECT count(*) FROM ins;

-- count_decided_matches --
-- Job $1's match count moved by $2 after decisions (match rate too).
UPDATE matching_jobs j
SET matches_found = j.matches_found + $2,
    match_rate = CASE WHEN j.processed_items = 0 THEN 0
                      ELSE (j.matches_found + $2) * 100.0 / j.processed_items END,
    updated_at = now()
WHERE j.id = $1
RETURNING j.*;

-- project_labels --
-- What project $1's decisions say about the pairs its jobs proposed: the chance the queue
-- showed that the proposed pair was right (its score before 017), its explanation, and
-- whether it was right (NULL: the decision says nothing about it, a no-match about another
-- record).
SELECT COALESCE(d.proposed_chance, d.proposed_score) AS score, d.proposed_explanation AS explanation,
       CASE WHEN d.decision = 'match' THEN d.catalog_id = d.proposed_catalog_id
            WHEN d.catalog_id IS NULL OR d.catalog_id = d.proposed_catalog_id THEN false
       END AS right
FROM review_decisions d
WHERE d.project_id = $1 AND d.proposed_score IS NOT NULL;

-- job_score_histogram --
-- How many of job $1's items have their best candidate in each of $2 score bins, as the
-- machine scored them: its machine matches, and the best candidates it queued for the items
-- it left unmatched (items it matched and a reviewer then decided are left out).
SELECT least(floor(s.score * $2)::integer, $2 - 1) AS bin, count(*)::integer AS n
FROM (SELECT m.score FROM matches m WHERE m.job_id = $1 AND m.method <> 'human' AND NOT m.stale
      UNION ALL
      SELECT q.score FROM review_queue q
      WHERE q.job_id = $1 AND NOT q.matched
        AND NOT EXISTS (SELECT 1 FROM matches m
                        WHERE m.job_id = $1 AND m.item_id = q.item_id AND m.method <> 'human'))
     AS s
GROUP BY 1;

-- set_project_calibration --
-- The acceptance re-fitted from project $1's decisions.
UPDATE projects SET calibration = $2 WHERE id = $1;
