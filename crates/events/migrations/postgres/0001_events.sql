-- Times are Unix epoch milliseconds (UTC) on both engines, so they compare the same way.
-- Venues never change once created; events copy their name and city.
CREATE TABLE venues (
    id         UUID PRIMARY KEY,
    name       TEXT NOT NULL,
    address    TEXT NOT NULL,
    city       TEXT NOT NULL,
    capacity   BIGINT NOT NULL,
    layout     TEXT,
    created_by UUID NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX venues_created ON venues (created_at, id);

CREATE TABLE events (
    id             UUID PRIMARY KEY,
    organizer_id   UUID NOT NULL,
    name           TEXT NOT NULL,
    description    TEXT,
    event_date     BIGINT NOT NULL,
    venue_id       UUID REFERENCES venues (id),
    venue_name     TEXT NOT NULL,
    city           TEXT,
    city_key       TEXT,
    event_type     TEXT,
    tags           TEXT NOT NULL,
    status         TEXT NOT NULL CHECK (status IN ('UPCOMING', 'ON_SALE', 'SOLD_OUT', 'CANCELLED')),
    total_seats    BIGINT NOT NULL CHECK (total_seats > 0),
    sale_start     BIGINT NOT NULL,
    sale_end       BIGINT,
    base_price     BIGINT NOT NULL CHECK (base_price >= 0),
    currency       TEXT NOT NULL,
    section_prices TEXT NOT NULL,
    reserved       BOOLEAN NOT NULL,
    version        BIGINT NOT NULL,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL
);
-- Listing order and the date-range filter.
CREATE INDEX events_date ON events (event_date, id);
-- The sale scheduler's scan: UPCOMING events by sale start.
CREATE INDEX events_due ON events (status, sale_start);

-- The transactional outbox and bus consumer positions (shape owned by evently-bus).
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
