-- Outbox bookkeeping: each undelivered event backs off on its own, and an event that can never
-- be delivered (Temporal refuses it) is set aside with its reason instead of blocking the relay.

ALTER TABLE events ADD COLUMN dispatch_attempts  integer NOT NULL DEFAULT 0;
ALTER TABLE events ADD COLUMN next_attempt_at    timestamptz;
ALTER TABLE events ADD COLUMN last_error         text;
ALTER TABLE events ADD COLUMN dead_lettered_at   timestamptz;
ALTER TABLE events ADD COLUMN dead_letter_reason text;

-- What the relay scans: only events still waiting, so the index stays small.
CREATE INDEX events_outbox ON events (received_at)
    WHERE dispatched_at IS NULL AND dead_lettered_at IS NULL AND contact_id IS NOT NULL;
CREATE INDEX events_dead_letters ON events (dead_lettered_at DESC)
    WHERE dead_lettered_at IS NOT NULL;
