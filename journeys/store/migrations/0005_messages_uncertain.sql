-- Sends are marked `sending` (with the attempt's time) just before the message is handed to the
-- server. A later attempt that finds that mark knows an earlier one was interrupted while the
-- server's acceptance was unknown: marketing email is then recorded `uncertain` and not sent again.
ALTER TABLE messages DROP CONSTRAINT IF EXISTS messages_status_check;
ALTER TABLE messages ADD CONSTRAINT messages_status_check
    CHECK (status IN ('pending', 'sending', 'sent', 'failed', 'uncertain'));
ALTER TABLE messages
    ADD COLUMN attempted_at timestamptz,
    ADD COLUMN attempts     integer NOT NULL DEFAULT 0;
