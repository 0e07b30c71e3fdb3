-- Core schema: audiences and contacts, flows and their versions, enrolments, events, messages, keys.

CREATE TABLE api_keys (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name         text NOT NULL,
    prefix       text NOT NULL,
    key_hash     text NOT NULL UNIQUE,
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz,
    revoked_at   timestamptz
);

CREATE TABLE audiences (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name       text NOT NULL,
    timezone   text NOT NULL DEFAULT 'UTC',
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE contacts (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    audience_id     uuid NOT NULL REFERENCES audiences (id) ON DELETE CASCADE,
    email           text NOT NULL,
    subscriber_hash text NOT NULL,
    status          text NOT NULL DEFAULT 'subscribed'
                    CHECK (status IN ('subscribed', 'unsubscribed', 'cleaned', 'pending', 'transactional')),
    first_name      text,
    last_name       text,
    phone           text,
    sms_status      text NOT NULL DEFAULT 'none'
                    CHECK (sms_status IN ('none', 'subscribed', 'unsubscribed')),
    timezone        text,
    birthday        text,
    fields          jsonb NOT NULL DEFAULT '{}'::jsonb,
    signup_at       timestamptz NOT NULL DEFAULT now(),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (audience_id, subscriber_hash)
);

CREATE TABLE tags (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    audience_id uuid NOT NULL REFERENCES audiences (id) ON DELETE CASCADE,
    name        text NOT NULL,
    UNIQUE (audience_id, name)
);

CREATE TABLE contact_tags (
    contact_id uuid NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
    tag_id     bigint NOT NULL REFERENCES tags (id) ON DELETE CASCADE,
    added_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (contact_id, tag_id)
);

CREATE TABLE flows (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    audience_id     uuid NOT NULL REFERENCES audiences (id) ON DELETE CASCADE,
    name            text NOT NULL,
    status          text NOT NULL DEFAULT 'draft'
                    CHECK (status IN ('draft', 'active', 'paused', 'archived')),
    current_version integer NOT NULL DEFAULT 1,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    activated_at    timestamptz
);
CREATE INDEX flows_active ON flows (status) WHERE status = 'active';

CREATE TABLE flow_versions (
    flow_id    uuid NOT NULL REFERENCES flows (id) ON DELETE CASCADE,
    version    integer NOT NULL,
    definition jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (flow_id, version)
);

-- One row per entry of a contact into a flow: the source of truth for re-entry rules.
CREATE TABLE enrollments (
    flow_id      uuid NOT NULL REFERENCES flows (id) ON DELETE CASCADE,
    contact_id   uuid NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
    entry        integer NOT NULL,
    version      integer NOT NULL,
    workflow_id  text NOT NULL,
    run_id       text NOT NULL,
    trigger_type text NOT NULL,
    event_id     text,
    status       text NOT NULL DEFAULT 'running',
    started_at   timestamptz NOT NULL DEFAULT now(),
    ended_at     timestamptz,
    PRIMARY KEY (flow_id, contact_id, entry),
    UNIQUE (run_id)
);

-- Append-only. `idempotency_key` makes a repeated delivery a no-op.
CREATE TABLE events (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    idempotency_key text NOT NULL UNIQUE,
    audience_id     uuid REFERENCES audiences (id) ON DELETE CASCADE,
    contact_id      uuid REFERENCES contacts (id) ON DELETE CASCADE,
    type            text NOT NULL,
    data            jsonb NOT NULL DEFAULT '{}'::jsonb,
    occurred_at     timestamptz NOT NULL DEFAULT now(),
    received_at     timestamptz NOT NULL DEFAULT now(),
    dispatched_at   timestamptz
);
CREATE INDEX events_contact ON events (contact_id, occurred_at);

-- Every send, keyed so a retried activity never sends twice what was recorded as sent.
CREATE TABLE messages (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    idempotency_key text NOT NULL UNIQUE,
    channel         text NOT NULL CHECK (channel IN ('email', 'sms')),
    flow_id         uuid REFERENCES flows (id) ON DELETE SET NULL,
    step_id         text,
    contact_id      uuid REFERENCES contacts (id) ON DELETE SET NULL,
    workflow_id     text,
    recipient       text NOT NULL,
    subject         text,
    message_id      text,
    status          text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'failed')),
    error           text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    sent_at         timestamptz
);
CREATE INDEX messages_contact ON messages (contact_id, created_at);
