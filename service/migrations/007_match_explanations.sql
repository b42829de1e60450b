-- What moved each match's score: a JSON list of {signal, value, contribution} (see README).
ALTER TABLE matches ADD COLUMN explanation jsonb;
