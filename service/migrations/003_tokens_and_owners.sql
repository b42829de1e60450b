-- API tokens (stored as SHA-256 hashes only) and project ownership.

CREATE TABLE api_tokens (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    owner text NOT NULL,
    token_hash text NOT NULL UNIQUE,
    prefix text NOT NULL,
    is_admin boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz
);

-- Projects made before tokens existed belong to the local owner.
ALTER TABLE projects ADD COLUMN owner text NOT NULL DEFAULT 'local';
ALTER TABLE projects ALTER COLUMN owner DROP DEFAULT;
CREATE INDEX projects_owner ON projects (owner, created_at DESC);
