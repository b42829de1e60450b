-- An ETA you can check: each chunk records the ETA the job gave once it was committed, and
-- the job's processed items at that moment; a completed job records how far off its ETA
-- was when 10 %, 50 % and 90 % of its items were processed: (ETA given - real remaining
-- time) / real remaining time, so 0.08 means 8 % too long and -0.2 means 20 % too short.
-- prepare_ms is the part of a chunk spent building the catalog index or the items' peers.
ALTER TABLE job_chunks
    ADD COLUMN eta_seconds double precision,
    ADD COLUMN processed_items integer,
    ADD COLUMN prepare_ms integer;

ALTER TABLE matching_jobs
    ADD COLUMN eta_error_10 double precision,
    ADD COLUMN eta_error_50 double precision,
    ADD COLUMN eta_error_90 double precision;

-- How far off the ETA of job $1 was when $3 of its $2 items were processed, the job having
-- completed at $4: the ETA recorded by the first chunk that reached that share, against the
-- time it really took from then. NULL when no chunk recorded one, or none was left to run.
CREATE FUNCTION chunkmatch_eta_error(
    job uuid, total integer, fraction double precision, completed timestamptz
) RETURNS double precision LANGUAGE sql STABLE AS $$
    SELECT (c.eta_seconds - real.seconds) / NULLIF(real.seconds, 0)
    FROM job_chunks c
    CROSS JOIN LATERAL (
        SELECT extract(epoch FROM completed - c.finished_at)::float8 AS seconds
    ) real
    WHERE c.job_id = job AND c.status = 'done' AND c.eta_seconds IS NOT NULL
      AND c.processed_items >= fraction * total
    ORDER BY c.finished_at, c.seq
    LIMIT 1
$$;
