-- A match judged beside the job's other matches of the same record (issue 11): when other
-- items are matched to that record, at most one of them is usually right, so a queued
-- match's error chance is re-judged beside its rivals whenever a chunk commit or a decision
-- changes the claims on its record (contested_claims in queries.sql;
-- matching.review.contested_error_chance is the same in Python), and a decision keeps the
-- chance the queue showed, which is what the project's re-fitted acceptance learns from.

-- The chance (0..1) that a match of `score` is right when its rivals' scores give
-- `log_free` = sum(ln(1 - rival score)) (NULL: no rival); `allowance`: how much of "both
-- right" is kept (matching.review.SHARED_RECORD_ALLOWANCE).
CREATE FUNCTION chunkmatch_contested_chance(score float8, log_free float8, allowance float8)
RETURNS float8
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN log_free IS NULL OR score >= 1 THEN score
        ELSE score * s.share / (score * s.share + 1 - score)
    END
    FROM (SELECT greatest(exp(log_free) + allowance * (1 - exp(log_free)), 1e-6) AS share) s
$$;

-- the chance the queue showed for the proposed pair when it was decided (NULL before 017)
ALTER TABLE review_decisions ADD COLUMN proposed_chance double precision;
