-- Times are Unix epoch milliseconds (UTC) on both engines, so they compare the same way.
-- Every inventory change locks its event's `inventories` row first (per-event serialisation),
-- then checks and changes seats; the unique index on valid tickets is the last guard against
-- selling a seat twice.
CREATE TABLE inventories (
    event_id       BLOB PRIMARY KEY,
    organizer_id   BLOB NOT NULL,
    status         TEXT NOT NULL,
    deleted        INTEGER NOT NULL DEFAULT 0,
    event_date     INTEGER NOT NULL,
    sale_start     INTEGER NOT NULL,
    sale_end       INTEGER,
    currency       TEXT NOT NULL,
    base_price     INTEGER NOT NULL,
    section_prices TEXT NOT NULL,
    reserved       INTEGER NOT NULL,
    capacity       INTEGER NOT NULL CHECK (capacity >= 0),
    held           INTEGER NOT NULL DEFAULT 0 CHECK (held >= 0),
    sold           INTEGER NOT NULL DEFAULT 0 CHECK (sold >= 0),
    version        INTEGER NOT NULL DEFAULT 0,
    updated_at     INTEGER NOT NULL,
    CHECK (held + sold <= capacity)
);

-- state: 0 available, 1 held, 2 sold. `ord` is the seat's place in the layout (best available
-- takes the lowest).
CREATE TABLE seats (
    event_id  BLOB NOT NULL,
    seat_id   TEXT NOT NULL,
    section   TEXT NOT NULL,
    row_label TEXT NOT NULL,
    number    INTEGER NOT NULL,
    ord       INTEGER NOT NULL,
    state     INTEGER NOT NULL DEFAULT 0 CHECK (state IN (0, 1, 2)),
    hold_id   BLOB,
    order_id  BLOB,
    PRIMARY KEY (event_id, seat_id)
);
CREATE INDEX seats_by_state ON seats (event_id, state, ord);
CREATE INDEX seats_by_hold ON seats (hold_id) WHERE hold_id IS NOT NULL;

-- status: active, released, expired, purchased, cancelled. kind: buyer or waitlist.
CREATE TABLE holds (
    id          BLOB PRIMARY KEY,
    event_id    BLOB NOT NULL,
    user_id     BLOB NOT NULL,
    seat_ids    TEXT NOT NULL,
    quantity    INTEGER NOT NULL,
    kind        TEXT NOT NULL,
    status      TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    ended_at    INTEGER
);
CREATE INDEX holds_live ON holds (event_id, expires_at) WHERE status = 'active';
CREATE INDEX holds_expiry ON holds (expires_at) WHERE status = 'active';
CREATE INDEX holds_by_user ON holds (event_id, user_id) WHERE status = 'active';

-- status: requires_confirmation, succeeded, declined, cancelled, refunded.
CREATE TABLE payment_intents (
    id            BLOB PRIMARY KEY,
    hold_id       BLOB NOT NULL,
    event_id      BLOB NOT NULL,
    user_id       BLOB NOT NULL,
    amount        INTEGER NOT NULL CHECK (amount >= 0),
    currency      TEXT NOT NULL,
    secret_hash   TEXT NOT NULL,
    status        TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);
CREATE INDEX payment_intents_by_hold ON payment_intents (hold_id);

-- status: confirmed, cancelled. One order per hold and per payment intent, ever.
CREATE TABLE orders (
    id                BLOB PRIMARY KEY,
    event_id          BLOB NOT NULL,
    user_id           BLOB NOT NULL,
    hold_id           BLOB NOT NULL UNIQUE,
    payment_intent_id BLOB NOT NULL UNIQUE,
    seat_ids          TEXT NOT NULL,
    quantity          INTEGER NOT NULL,
    amount            INTEGER NOT NULL,
    currency          TEXT NOT NULL,
    status            TEXT NOT NULL,
    refunded_amount   INTEGER,
    cancel_reason     TEXT,
    created_at        INTEGER NOT NULL,
    cancelled_at      INTEGER
);
CREATE INDEX orders_by_user ON orders (user_id, created_at);
CREATE INDEX orders_by_event ON orders (event_id, status);

-- status: valid, void. At most one valid ticket per seat.
CREATE TABLE tickets (
    id        BLOB PRIMARY KEY,
    order_id  BLOB NOT NULL,
    event_id  BLOB NOT NULL,
    seat_id   TEXT NOT NULL,
    code      TEXT NOT NULL UNIQUE,
    status    TEXT NOT NULL
);
CREATE UNIQUE INDEX tickets_one_valid_per_seat ON tickets (event_id, seat_id) WHERE status = 'valid';
CREATE INDEX tickets_by_order ON tickets (order_id);

-- Purchase responses by (caller, route, key); status: in_flight or complete.
CREATE TABLE idempotency_keys (
    user_id         BLOB NOT NULL,
    route           TEXT NOT NULL,
    key             TEXT NOT NULL,
    fingerprint     TEXT NOT NULL,
    status          TEXT NOT NULL,
    response_status INTEGER,
    response_body   TEXT,
    locked_at       INTEGER NOT NULL,
    created_at      INTEGER NOT NULL,
    expires_at      INTEGER NOT NULL,
    PRIMARY KEY (user_id, route, key)
);
CREATE INDEX idempotency_expiry ON idempotency_keys (expires_at);

-- status: waiting, offered, claimed, left, lapsed. One open entry per user and event.
CREATE TABLE waitlist (
    id         BLOB PRIMARY KEY,
    event_id   BLOB NOT NULL,
    user_id    BLOB NOT NULL,
    quantity   INTEGER NOT NULL,
    seq        INTEGER NOT NULL,
    status     TEXT NOT NULL,
    hold_id    BLOB,
    joined_at  INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE UNIQUE INDEX waitlist_one_open ON waitlist (event_id, user_id) WHERE status IN ('waiting', 'offered');
CREATE INDEX waitlist_queue ON waitlist (event_id, status, seq);

-- The domain events (from the events service) already applied, by envelope id.
CREATE TABLE applied_events (
    id         BLOB PRIMARY KEY,
    applied_at INTEGER NOT NULL
);

-- The outbox and consumer positions, as every service's SQLite migrations must create them
-- (copied there verbatim; this file is what the bus's own tests run). Times are epoch ms.
CREATE TABLE outbox (
    seq               INTEGER PRIMARY KEY AUTOINCREMENT,
    id                BLOB NOT NULL UNIQUE,
    event_type        TEXT NOT NULL,
    schema_version    INTEGER NOT NULL,
    aggregate_type    TEXT NOT NULL,
    aggregate_id      BLOB NOT NULL,
    aggregate_version INTEGER NOT NULL,
    occurred_at       INTEGER NOT NULL,
    payload           TEXT NOT NULL,
    published_at      INTEGER
);
CREATE INDEX outbox_unpublished ON outbox (seq) WHERE published_at IS NULL;

CREATE TABLE bus_positions (
    consumer   TEXT PRIMARY KEY NOT NULL,
    position   INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
