-- Provider receivers: per-audience integration secrets, carts, store inventory, site visitors,
-- and SMS delivery statuses reported back by Twilio.

-- One row per audience and provider. `secret` is what the provider signs with (Shopify app
-- secret, LiveChat secret key, Eventbrite token): it must be kept in clear to verify or call.
-- `token_hash` is the SHA-256 of a URL token we issued (Zapier hook, Eventbrite hook, site key):
-- only its hash is stored, and a request is matched to its audience by that hash.
CREATE TABLE integrations (
    audience_id uuid NOT NULL REFERENCES audiences (id) ON DELETE CASCADE,
    provider    text NOT NULL,
    secret      text,
    token_hash  text UNIQUE,
    config      jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (audience_id, provider)
);

-- A contact's shopping cart (Shopify cart/checkout, or a `cart_updated` activity event).
CREATE TABLE carts (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    audience_id  uuid NOT NULL REFERENCES audiences (id) ON DELETE CASCADE,
    contact_id   uuid REFERENCES contacts (id) ON DELETE SET NULL,
    external_id  text NOT NULL,
    items        jsonb NOT NULL DEFAULT '[]'::jsonb,
    product_ids  text[] NOT NULL DEFAULT '{}',
    url          text,
    currency     text,
    total        numeric(14, 2),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    completed_at timestamptz,
    emptied_at   timestamptz,
    UNIQUE (audience_id, external_id)
);
CREATE INDEX carts_open_products ON carts USING gin (product_ids)
    WHERE completed_at IS NULL AND emptied_at IS NULL;

-- Stock per Shopify inventory item (a variant), and the product it belongs to.
CREATE TABLE inventory_items (
    audience_id       uuid NOT NULL REFERENCES audiences (id) ON DELETE CASCADE,
    inventory_item_id text NOT NULL,
    product_id        text NOT NULL,
    available         integer,
    -- inventory_levels/update reports one location at a time: location id → available.
    levels            jsonb NOT NULL DEFAULT '{}'::jsonb,
    updated_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (audience_id, inventory_item_id)
);
CREATE INDEX inventory_items_product ON inventory_items (audience_id, product_id);

-- A browser (site tracking or Shopify pixel client id) tied to a contact.
CREATE TABLE site_visitors (
    audience_id uuid NOT NULL REFERENCES audiences (id) ON DELETE CASCADE,
    visitor_id  text NOT NULL,
    contact_id  uuid NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
    seen_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (audience_id, visitor_id)
);

-- Twilio's status callbacks: queued, sent, delivered, undelivered, failed, ...
ALTER TABLE messages ADD COLUMN delivery_status text;
ALTER TABLE messages ADD COLUMN delivery_error text;
ALTER TABLE messages ADD COLUMN provider_message_id text;
CREATE INDEX contacts_phone ON contacts (audience_id, phone) WHERE phone IS NOT NULL;
