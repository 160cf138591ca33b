-- Times are Unix epoch milliseconds (UTC) on both engines, so they compare the same way.
-- Every inventory change locks its event's `inventories` row first (per-event serialisation),
-- then checks and changes seats; the unique index on valid tickets is the last guard against
-- selling a seat twice.
CREATE TABLE inventories (
    event_id       UUID PRIMARY KEY,
    organizer_id   UUID NOT NULL,
    status         TEXT NOT NULL,
    deleted        BIGINT NOT NULL DEFAULT 0,
    event_date     BIGINT NOT NULL,
    sale_start     BIGINT NOT NULL,
    sale_end       BIGINT,
    currency       TEXT NOT NULL,
    base_price     BIGINT NOT NULL,
    section_prices TEXT NOT NULL,
    reserved       BIGINT NOT NULL,
    capacity       BIGINT NOT NULL CHECK (capacity >= 0),
    held           BIGINT NOT NULL DEFAULT 0 CHECK (held >= 0),
    sold           BIGINT NOT NULL DEFAULT 0 CHECK (sold >= 0),
    version        BIGINT NOT NULL DEFAULT 0,
    updated_at     BIGINT NOT NULL,
    CHECK (held + sold <= capacity)
);

-- state: 0 available, 1 held, 2 sold. `ord` is the seat's place in the layout (best available
-- takes the lowest).
CREATE TABLE seats (
    event_id  UUID NOT NULL,
    seat_id   TEXT NOT NULL,
    section   TEXT NOT NULL,
    row_label TEXT NOT NULL,
    number    BIGINT NOT NULL,
    ord       BIGINT NOT NULL,
    state     SMALLINT NOT NULL DEFAULT 0 CHECK (state IN (0, 1, 2)),
    hold_id   UUID,
    order_id  UUID,
    PRIMARY KEY (event_id, seat_id)
);
CREATE INDEX seats_by_state ON seats (event_id, state, ord);
CREATE INDEX seats_by_hold ON seats (hold_id) WHERE hold_id IS NOT NULL;

-- status: active, released, expired, purchased, cancelled. kind: buyer or waitlist.
CREATE TABLE holds (
    id          UUID PRIMARY KEY,
    event_id    UUID NOT NULL,
    user_id     UUID NOT NULL,
    seat_ids    TEXT NOT NULL,
    quantity    BIGINT NOT NULL,
    kind        TEXT NOT NULL,
    status      TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    ended_at    BIGINT
);
CREATE INDEX holds_live ON holds (event_id, expires_at) WHERE status = 'active';
CREATE INDEX holds_expiry ON holds (expires_at) WHERE status = 'active';
CREATE INDEX holds_by_user ON holds (event_id, user_id) WHERE status = 'active';

-- status: requires_confirmation, succeeded, declined, cancelled, refunded.
CREATE TABLE payment_intents (
    id            UUID PRIMARY KEY,
    hold_id       UUID NOT NULL,
    event_id      UUID NOT NULL,
    user_id       UUID NOT NULL,
    amount        BIGINT NOT NULL CHECK (amount >= 0),
    currency      TEXT NOT NULL,
    secret_hash   TEXT NOT NULL,
    status        TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL
);
CREATE INDEX payment_intents_by_hold ON payment_intents (hold_id);

-- status: confirmed, cancelled. One order per hold and per payment intent, ever.
CREATE TABLE orders (
    id                UUID PRIMARY KEY,
    event_id          UUID NOT NULL,
    user_id           UUID NOT NULL,
    hold_id           UUID NOT NULL UNIQUE,
    payment_intent_id UUID NOT NULL UNIQUE,
    seat_ids          TEXT NOT NULL,
    quantity          BIGINT NOT NULL,
    amount            BIGINT NOT NULL,
    currency          TEXT NOT NULL,
    status            TEXT NOT NULL,
    refunded_amount   BIGINT,
    cancel_reason     TEXT,
    created_at        BIGINT NOT NULL,
    cancelled_at      BIGINT
);
CREATE INDEX orders_by_user ON orders (user_id, created_at);
CREATE INDEX orders_by_event ON orders (event_id, status);

-- status: valid, void. At most one valid ticket per seat.
CREATE TABLE tickets (
    id        UUID PRIMARY KEY,
    order_id  UUID NOT NULL,
    event_id  UUID NOT NULL,
    seat_id   TEXT NOT NULL,
    code      TEXT NOT NULL UNIQUE,
    status    TEXT NOT NULL
);
CREATE UNIQUE INDEX tickets_one_valid_per_seat ON tickets (event_id, seat_id) WHERE status = 'valid';
CREATE INDEX tickets_by_order ON tickets (order_id);

-- Purchase responses by (caller, route, key); status: in_flight or complete.
CREATE TABLE idempotency_keys (
    user_id         UUID NOT NULL,
    route           TEXT NOT NULL,
    key             TEXT NOT NULL,
    fingerprint     TEXT NOT NULL,
    status          TEXT NOT NULL,
    response_status BIGINT,
    response_body   TEXT,
    locked_at       BIGINT NOT NULL,
    created_at      BIGINT NOT NULL,
    expires_at      BIGINT NOT NULL,
    PRIMARY KEY (user_id, route, key)
);
CREATE INDEX idempotency_expiry ON idempotency_keys (expires_at);

-- status: waiting, offered, claimed, left, lapsed. One open entry per user and event.
CREATE TABLE waitlist (
    id         UUID PRIMARY KEY,
    event_id   UUID NOT NULL,
    user_id    UUID NOT NULL,
    quantity   BIGINT NOT NULL,
    seq        BIGINT NOT NULL,
    status     TEXT NOT NULL,
    hold_id    UUID,
    joined_at  BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX waitlist_one_open ON waitlist (event_id, user_id) WHERE status IN ('waiting', 'offered');
CREATE INDEX waitlist_queue ON waitlist (event_id, status, seq);

-- The domain events (from the events service) already applied, by envelope id.
CREATE TABLE applied_events (
    id         UUID PRIMARY KEY,
    applied_at BIGINT NOT NULL
);

-- The outbox and consumer positions, as every service's PostgreSQL migrations must create them
-- (copied there verbatim; this file is what the bus's own tests run). Times are epoch ms.
CREATE TABLE outbox (
    seq               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id                UUID NOT NULL UNIQUE,
    event_type        TEXT NOT NULL,
    schema_version    BIGINT NOT NULL,
    aggregate_type    TEXT NOT NULL,
    aggregate_id      UUID NOT NULL,
    aggregate_version BIGINT NOT NULL,
    occurred_at       BIGINT NOT NULL,
    payload           TEXT NOT NULL,
    published_at      BIGINT
);
CREATE INDEX outbox_unpublished ON outbox (seq) WHERE published_at IS NULL;

CREATE TABLE bus_positions (
    consumer   TEXT PRIMARY KEY,
    position   BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
