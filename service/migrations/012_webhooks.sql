-- Webhooks (Standard Webhooks 1.0). A project's endpoints (webhooks), and an outbox:
-- a job's change that completes, fails or cancels it, or ends one of its stages, writes its
-- event (webhook_events) and one delivery per subscribed endpoint (webhook_deliveries) in
-- the same transaction, by a trigger, whichever process or statement made the change; a
-- statement that changes no job row (a commit that lost its lease) writes none. Workers
-- claim due deliveries with a lease (service/webhooks.py). Public monitoring interface:
-- webhook_deliveries (see README).

CREATE TABLE webhooks (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    project_id uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    url text NOT NULL,
    events text[] NOT NULL,
    secret text NOT NULL,  -- whsec_<base64 of 32 bytes>: it signs, so it is kept as is
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhooks_project ON webhooks (project_id);

CREATE TABLE webhook_events (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),  -- the webhook-id header
    seq bigint GENERATED ALWAYS AS IDENTITY UNIQUE,  -- order of a job's events
    project_id uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    job_id uuid NOT NULL,  -- no foreign key: a pending event outlives its job's retention
    type text NOT NULL,
    stage integer,  -- job.stage_completed: the stage (1-based) that ended
    job jsonb NOT NULL,  -- the job's row as this change left it
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE webhook_deliveries (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    webhook_id uuid NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    event_id uuid NOT NULL REFERENCES webhook_events (id) ON DELETE CASCADE,
    job_id uuid NOT NULL,
    event_seq bigint NOT NULL,
    event_type text NOT NULL,
    status text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts integer NOT NULL DEFAULT 0,
    status_code integer,  -- the receiver's answer to the latest attempt
    error text,  -- why the latest attempt failed
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    lease_owner text,
    lease_expires_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    last_attempt_at timestamptz,
    delivered_at timestamptz,
    UNIQUE (webhook_id, event_id)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at)
    WHERE status = 'pending';
CREATE INDEX webhook_deliveries_order ON webhook_deliveries (webhook_id, job_id, event_seq)
    WHERE status = 'pending';
CREATE INDEX webhook_deliveries_of_webhook ON webhook_deliveries (webhook_id, id DESC);

CREATE FUNCTION chunkmatch_job_webhook_events() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    kinds text[] := '{}';
    stages integer[] := '{}';
    event_id uuid;
    event_seq bigint;
    written boolean := false;
BEGIN
    -- each stage entered after the one before ended (a stage with nothing to do included)
    IF NEW.current_stage > OLD.current_stage THEN
        FOR s IN OLD.current_stage .. NEW.current_stage - 1 LOOP
            kinds := kinds || 'job.stage_completed'::text;
            stages := stages || s;
        END LOOP;
    END IF;
    IF NEW.status IS DISTINCT FROM OLD.status
       AND NEW.status IN ('completed', 'failed', 'cancelled') THEN
        IF NEW.status = 'completed' THEN  -- the last stage ended with the job
            kinds := kinds || 'job.stage_completed'::text;
            stages := stages || NEW.current_stage;
        END IF;
        kinds := kinds || ('job.' || NEW.status);
        stages := stages || NULL::integer;
    END IF;
    FOR i IN 1 .. coalesce(array_length(kinds, 1), 0) LOOP
        CONTINUE WHEN NOT EXISTS (
            SELECT 1 FROM webhooks w WHERE w.project_id = NEW.project_id AND kinds[i] = ANY (w.events));
        INSERT INTO webhook_events (project_id, job_id, type, stage, job)
        VALUES (NEW.project_id, NEW.id, kinds[i], stages[i], to_jsonb(NEW))
        RETURNING id, seq INTO event_id, event_seq;
        INSERT INTO webhook_deliveries (webhook_id, event_id, job_id, event_seq, event_type)
        SELECT w.id, event_id, NEW.id, event_seq, kinds[i]
        FROM webhooks w WHERE w.project_id = NEW.project_id AND kinds[i] = ANY (w.events);
        written := true;
    END LOOP;
    IF written THEN
        PERFORM pg_notify('chunkmatch_webhooks', NEW.id::text);
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER matching_jobs_webhook_events AFTER UPDATE ON matching_jobs
    FOR EACH ROW
    WHEN (OLD.status IS DISTINCT FROM NEW.status OR OLD.current_stage IS DISTINCT FROM NEW.current_stage)
    EXECUTE FUNCTION chunkmatch_job_webhook_events();
