-- A change of an audience's time zone moves the armed date timers that follow it. The change
-- is stored with the new zone, in the same transaction, and marked told once every armed run
-- heard it: a process that dies in between leaves it untold, and the outbox relay tells it.
CREATE TABLE audience_rezones (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    audience_id uuid NOT NULL REFERENCES audiences (id) ON DELETE CASCADE,
    zone text NOT NULL,
    previous text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    told_at timestamptz,
    told integer,
    -- Failed attempts of the relay, backed off and bounded as events' are.
    attempts integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz,
    error text,
    given_up_at timestamptz
);
CREATE INDEX audience_rezones_untold ON audience_rezones (created_at) WHERE told_at IS NULL AND given_up_at IS NULL;
