-- Timer triggers: contacts with an armed run, and the progress of arming a flow's audience.

CREATE TABLE armed_runs (
    flow_id     uuid NOT NULL REFERENCES flows (id) ON DELETE CASCADE,
    contact_id  uuid NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
    workflow_id text NOT NULL,
    armed_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (flow_id, contact_id)
);

CREATE TABLE flow_arming (
    flow_id     uuid PRIMARY KEY REFERENCES flows (id) ON DELETE CASCADE,
    workflow_id text NOT NULL,
    total       integer NOT NULL DEFAULT 0,
    armed       integer NOT NULL DEFAULT 0,
    skipped     integer NOT NULL DEFAULT 0,
    done        boolean NOT NULL DEFAULT false,
    started_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
