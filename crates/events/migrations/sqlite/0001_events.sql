-- Times are Unix epoch milliseconds (UTC) on both engines, so they compare the same way.
-- Venues never change once created; events copy their name and city.
CREATE TABLE venues (
    id         BLOB PRIMARY KEY NOT NULL,
    name       TEXT NOT NULL,
    address    TEXT NOT NULL,
    city       TEXT NOT NULL,
    capacity   INTEGER NOT NULL,
    layout     TEXT,
    created_by BLOB NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX venues_created ON venues (created_at, id);

CREATE TABLE events (
    id             BLOB PRIMARY KEY NOT NULL,
    organizer_id   BLOB NOT NULL,
    name           TEXT NOT NULL,
    description    TEXT,
    event_date     INTEGER NOT NULL,
    venue_id       BLOB REFERENCES venues (id),
    venue_name     TEXT NOT NULL,
    city           TEXT,
    city_key       TEXT,
    event_type     TEXT,
    tags           TEXT NOT NULL,
    status         TEXT NOT NULL CHECK (status IN ('UPCOMING', 'ON_SALE', 'SOLD_OUT', 'CANCELLED')),
    total_seats    INTEGER NOT NULL CHECK (total_seats > 0),
    sale_start     INTEGER NOT NULL,
    sale_end       INTEGER,
    base_price     INTEGER NOT NULL CHECK (base_price >= 0),
    currency       TEXT NOT NULL,
    section_prices TEXT NOT NULL,
    reserved       BOOLEAN NOT NULL,
    version        INTEGER NOT NULL,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL
);
-- Listing order and the date-range filter.
CREATE INDEX events_date ON events (event_date, id);
-- The sale scheduler's scan: UPCOMING events by sale start.
CREATE INDEX events_due ON events (status, sale_start);

-- The transactional outbox and bus consumer positions (shape owned by evently-bus).
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
