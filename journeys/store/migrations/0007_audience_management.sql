-- Audience management: merge-field definitions, archived members, member location,
-- contact search, and the stable numeric ids Mailchimp-style journey triggers address.

ALTER TABLE contacts DROP CONSTRAINT contacts_status_check;
ALTER TABLE contacts ADD CONSTRAINT contacts_status_check
    CHECK (status IN ('subscribed', 'unsubscribed', 'cleaned', 'pending', 'transactional',
                      'archived'));
-- Mailchimp's member `location` (latitude, longitude, country_code, timezone) as it was given.
ALTER TABLE contacts ADD COLUMN location jsonb;

-- Listing and email-prefix search, in byte order so `LIKE 'prefix%'` can use the index.
CREATE INDEX contacts_audience_email
    ON contacts (audience_id, (lower(email) COLLATE "C"), id);

-- Per-audience merge fields: how a value under `tag` is checked and converted.
CREATE TABLE merge_fields (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    audience_id uuid NOT NULL REFERENCES audiences (id) ON DELETE CASCADE,
    tag         text NOT NULL,
    name        text NOT NULL,
    type        text NOT NULL
                CHECK (type IN ('text', 'number', 'date', 'birthday', 'phone', 'url', 'dropdown')),
    required    boolean NOT NULL DEFAULT false,
    choices     text[] NOT NULL DEFAULT '{}',
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (audience_id, tag)
);

-- Mailchimp addresses a journey trigger by numbers: /customer-journeys/journeys/{id}/steps/{id}.
ALTER TABLE flows ADD COLUMN journey_id bigint GENERATED ALWAYS AS IDENTITY;
CREATE UNIQUE INDEX flows_journey_id ON flows (journey_id);
