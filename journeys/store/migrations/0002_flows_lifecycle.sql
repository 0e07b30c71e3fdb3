-- Flow lifecycle and what flow rules refer to: campaigns, groups, orders.

-- Flows are applied by name within their audience, so live names are unique there.
CREATE UNIQUE INDEX flows_live_name ON flows (audience_id, lower(name)) WHERE status <> 'archived';

ALTER TABLE flows ADD COLUMN archived_at timestamptz;
ALTER TABLE flow_versions ADD COLUMN note text;

CREATE TABLE campaigns (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    audience_id uuid NOT NULL REFERENCES audiences (id) ON DELETE CASCADE,
    name        text NOT NULL,
    subject     text NOT NULL,
    status      text NOT NULL DEFAULT 'draft' CHECK (status IN ('draft', 'sending', 'sent')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    sent_at     timestamptz
);

CREATE TABLE groups (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    audience_id uuid NOT NULL REFERENCES audiences (id) ON DELETE CASCADE,
    name        text NOT NULL,
    UNIQUE (audience_id, name)
);

CREATE TABLE contact_groups (
    contact_id uuid NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
    group_id   bigint NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    joined_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (contact_id, group_id)
);

CREATE TABLE orders (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    audience_id uuid NOT NULL REFERENCES audiences (id) ON DELETE CASCADE,
    contact_id  uuid REFERENCES contacts (id) ON DELETE SET NULL,
    external_id text NOT NULL,
    status      text NOT NULL DEFAULT 'placed',
    currency    text,
    total       numeric(14, 2),
    product_ids text[] NOT NULL DEFAULT '{}',
    placed_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (audience_id, external_id)
);
CREATE INDEX orders_contact ON orders (contact_id, placed_at);

CREATE INDEX events_contact_type ON events (contact_id, type, occurred_at);
ALTER TABLE enrollments ADD COLUMN end_reason text;
CREATE INDEX enrollments_running ON enrollments (flow_id, workflow_id) WHERE status = 'running';
CREATE INDEX enrollments_contact_running ON enrollments (contact_id) WHERE status = 'running';
