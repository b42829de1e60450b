-- chunkmatch_contested_chance (migration 019) with its rivals' log_free held at -700 or
-- above before exp(): PostgreSQL's exp() raises "value out of range: underflow" where the
-- result is too small for a float8 (below about exp(-708)), and a record that many items
-- claim for sure gives that (60 exact claims: 60 x ln(1e-6) = -829). The commit that ends
-- such a job failed, every retry alike, so the job never ended (a 1M x 1M job's end). Python's
-- math.exp gives 0.0 there (matching.claims); exp(-700) is 1e-304, the same value to every
-- digit a float8 keeps beside the allowance it is added to. Still one expression without a
-- FROM clause, so that PostgreSQL inlines it.
CREATE OR REPLACE FUNCTION chunkmatch_contested_chance(score float8, log_free float8,
                                                       allowance float8)
RETURNS float8
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN log_free IS NULL OR score >= 1 THEN score
        ELSE score * greatest(exp(greatest(log_free, -700))
                              + allowance * (1 - exp(greatest(log_free, -700))), 1e-6)
             / (score * greatest(exp(greatest(log_free, -700))
                                 + allowance * (1 - exp(greatest(log_free, -700))), 1e-6)
                + 1 - score)
    END
$$;
