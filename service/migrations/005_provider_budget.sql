-- Requests and tokens spent per provider per minute, shared by every process: the
-- requests-per-minute and tokens-per-minute budgets are kept here, never per process.
CREATE TABLE provider_budget (
    provider text NOT NULL,
    window_start timestamptz NOT NULL,
    requests integer NOT NULL DEFAULT 0,
    tokens bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (provider, window_start)
);
