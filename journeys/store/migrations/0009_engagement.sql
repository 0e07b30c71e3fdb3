-- The email engagement loop: tracked opens and clicks, unsubscribe links, bounces.

-- `ref` names a message in its tracking and unsubscribe tokens (16 bytes of the hash of its
-- idempotency key, hex); `links` holds the URLs the message carried, so a click redirects only
-- to one of them. `bounce` says how the recipient's server refused it (hard, soft).
ALTER TABLE messages ADD COLUMN ref text;
ALTER TABLE messages ADD COLUMN audience_id uuid REFERENCES audiences (id) ON DELETE CASCADE;
ALTER TABLE messages ADD COLUMN campaign_id uuid REFERENCES campaigns (id) ON DELETE SET NULL;
ALTER TABLE messages ADD COLUMN links jsonb NOT NULL DEFAULT '[]'::jsonb;
ALTER TABLE messages ADD COLUMN bounce text CHECK (bounce IN ('hard', 'soft'));
CREATE UNIQUE INDEX messages_ref ON messages (ref);
CREATE INDEX messages_flow ON messages (flow_id, step_id) WHERE flow_id IS NOT NULL;
CREATE INDEX messages_campaign ON messages (campaign_id) WHERE campaign_id IS NOT NULL;

-- Soft bounces in a row (reset by a delivered message); at the threshold the contact is cleaned.
ALTER TABLE contacts ADD COLUMN soft_bounces integer NOT NULL DEFAULT 0;

-- Campaigns become sendable: content, recipients (a segment of the audience), schedule, state.
ALTER TABLE campaigns DROP CONSTRAINT campaigns_status_check;
ALTER TABLE campaigns ADD CONSTRAINT campaigns_status_check
    CHECK (status IN ('draft', 'scheduled', 'sending', 'paused', 'sent', 'cancelled'));
-- preheader, html, text, sender, segment, tracking, rate: see journeys/domain/campaigns.py.
ALTER TABLE campaigns ADD COLUMN content jsonb NOT NULL DEFAULT '{}'::jsonb;
ALTER TABLE campaigns ADD COLUMN send_at timestamptz;

-- Reports count the events an email caused by the email they name.
CREATE INDEX events_email_flow ON events ((data->>'flow_id'), type)
    WHERE data->>'flow_id' IS NOT NULL;
CREATE INDEX events_email_campaign ON events ((data->>'campaign_id'), type)
    WHERE data->>'campaign_id' IS NOT NULL;
