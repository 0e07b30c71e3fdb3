-- The gateway records an entry before Temporal has started its run (issue 13): the run id is
-- unknown until the start returns, and stays unknown if the process dies in between (the
-- outbox relay then starts the run). UNIQUE (run_id) still holds for the ids that are known.
ALTER TABLE enrollments ALTER COLUMN run_id DROP NOT NULL;
-- A redelivered event finds the entry it already made.
CREATE INDEX enrollments_event ON enrollments (event_id) WHERE event_id IS NOT NULL;
