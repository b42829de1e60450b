-- chunkmatch schema, version 1.
-- Public monitoring interface: matching_jobs, job_chunks, matches (see README).

CREATE TABLE projects (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name text NOT NULL,
    catalog_version bigint NOT NULL DEFAULT 0,
    catalog_columns text[] NOT NULL DEFAULT '{}',
    item_columns text[] NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE catalog_records (
    project_id uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    record_id text NOT NULL,
    data jsonb NOT NULL,
    PRIMARY KEY (project_id, record_id)
);

CREATE TABLE items (
    project_id uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    item_id text NOT NULL,
    seq bigint GENERATED ALWAYS AS IDENTITY,
    data jsonb NOT NULL,
    PRIMARY KEY (project_id, item_id)
);
CREATE INDEX items_project_seq ON items (project_id, seq);

CREATE TABLE matching_jobs (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    project_id uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    job_type text NOT NULL,
    status text NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'processing', 'completed', 'failed', 'cancelled')),
    config jsonb NOT NULL DEFAULT '{}',
    stages text[] NOT NULL,
    current_stage integer NOT NULL DEFAULT 1,
    current_stage_name text NOT NULL,
    chunk_size integer NOT NULL CHECK (chunk_size > 0),
    total_items integer NOT NULL DEFAULT 0,
    claimed_items integer NOT NULL DEFAULT 0,   -- items handed to chunks so far
    next_chunk_seq integer NOT NULL DEFAULT 1,
    processed_items integer NOT NULL DEFAULT 0,
    progress_percentage double precision NOT NULL DEFAULT 0,
    matches_found integer NOT NULL DEFAULT 0,
    match_rate double precision NOT NULL DEFAULT 0,
    items_per_second double precision,
    eta_seconds double precision,
    estimated_completion timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    started_at timestamptz,
    completed_at timestamptz,
    updated_at timestamptz NOT NULL DEFAULT now(),
    error text,
    CHECK (processed_items <= total_items),
    CHECK (claimed_items <= total_items)
);
CREATE INDEX matching_jobs_project ON matching_jobs (project_id, created_at DESC);
CREATE INDEX matching_jobs_active ON matching_jobs (status) WHERE status IN ('pending', 'processing');

-- The items a job works on, frozen when it is created: ord 1..total_items.
CREATE TABLE job_items (
    job_id uuid NOT NULL REFERENCES matching_jobs (id) ON DELETE CASCADE,
    ord integer NOT NULL,
    item_id text NOT NULL,
    PRIMARY KEY (job_id, ord)
);

-- One row per chunk: claimed with a lease, then done. Items are job_items with
-- ord_from < ord <= ord_to.
CREATE TABLE job_chunks (
    job_id uuid NOT NULL REFERENCES matching_jobs (id) ON DELETE CASCADE,
    seq integer NOT NULL,
    stage integer NOT NULL,
    ord_from integer NOT NULL,
    ord_to integer NOT NULL,
    status text NOT NULL DEFAULT 'running' CHECK (status IN ('running', 'done')),
    items integer NOT NULL DEFAULT 0,
    matches integer NOT NULL DEFAULT 0,
    lease_owner text,
    lease_expires_at timestamptz,
    attempts integer NOT NULL DEFAULT 1,
    started_at timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    duration_ms integer,
    PRIMARY KEY (job_id, seq),
    UNIQUE (job_id, stage, ord_from),
    CHECK (ord_to > ord_from)
);
CREATE INDEX job_chunks_running ON job_chunks (job_id, lease_expires_at) WHERE status = 'running';

CREATE TABLE matches (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job_id uuid NOT NULL REFERENCES matching_jobs (id) ON DELETE CASCADE,
    project_id uuid NOT NULL,
    item_id text NOT NULL,
    catalog_id text NOT NULL,
    score double precision NOT NULL CHECK (score >= 0 AND score <= 1),
    method text NOT NULL,
    reason text NOT NULL DEFAULT '',
    stage integer NOT NULL,
    chunk_seq integer NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (job_id, item_id)
);
CREATE INDEX matches_project_item ON matches (project_id, item_id);
