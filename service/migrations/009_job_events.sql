-- Live push and polls from memory: every change of a job's row gets a per-job increasing
-- version and a NOTIFY in the same transaction (so listeners hear only committed states,
-- whichever process or statement made the change); a token's revocation is pushed the
-- same way, so that processes caching tokens drop it at once. Short-lived tickets let a
-- browser's EventSource (which cannot send headers) open one job's event stream.

ALTER TABLE matching_jobs ADD COLUMN version bigint NOT NULL DEFAULT 0;

CREATE FUNCTION chunkmatch_bump_job_version() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.version := OLD.version + 1;
    RETURN NEW;
END $$;

CREATE TRIGGER matching_jobs_version BEFORE UPDATE ON matching_jobs
    FOR EACH ROW WHEN (OLD.* IS DISTINCT FROM NEW.*)
    EXECUTE FUNCTION chunkmatch_bump_job_version();

-- payload: "<job id>:<version>", or "<job id>:deleted"
CREATE FUNCTION chunkmatch_notify_job_event() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM pg_notify('chunkmatch_job_events', OLD.id::text || ':deleted');
        RETURN OLD;
    END IF;
    PERFORM pg_notify('chunkmatch_job_events', NEW.id::text || ':' || NEW.version::text);
    RETURN NEW;
END $$;

CREATE TRIGGER matching_jobs_insert_event AFTER INSERT ON matching_jobs
    FOR EACH ROW EXECUTE FUNCTION chunkmatch_notify_job_event();
CREATE TRIGGER matching_jobs_update_event AFTER UPDATE ON matching_jobs
    FOR EACH ROW WHEN (OLD.version IS DISTINCT FROM NEW.version)
    EXECUTE FUNCTION chunkmatch_notify_job_event();
CREATE TRIGGER matching_jobs_delete_event AFTER DELETE ON matching_jobs
    FOR EACH ROW EXECUTE FUNCTION chunkmatch_notify_job_event();

-- payload: the token's hash (never the token)
CREATE FUNCTION chunkmatch_notify_token_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM pg_notify('chunkmatch_tokens', OLD.token_hash);
        RETURN OLD;
    END IF;
    PERFORM pg_notify('chunkmatch_tokens', NEW.token_hash);
    RETURN NEW;
END $$;

CREATE TRIGGER api_tokens_change AFTER UPDATE OR DELETE ON api_tokens
    FOR EACH ROW EXECUTE FUNCTION chunkmatch_notify_token_change();

CREATE TABLE event_tickets (
    ticket_hash text PRIMARY KEY,
    job_id uuid NOT NULL REFERENCES matching_jobs (id) ON DELETE CASCADE,
    token_hash text NOT NULL REFERENCES api_tokens (token_hash) ON DELETE CASCADE,
    expires_at timestamptz NOT NULL
);
CREATE INDEX event_tickets_expiry ON event_tickets (expires_at);
