-- A job's matches in id order, for its pages and its CSV (keyset on id): each page reads its
-- own rows only. Without it a page scanned every later match of the job and sorted them
-- (right after a 100k job, before autoanalyze, it also joined their texts): the CSV of
-- 100,000 matches took 5-19 s, its cost growing with the square of the job's size.
CREATE INDEX matches_job_order ON matches (job_id, id);
