-- The outbox and consumer positions, as every service's PostgreSQL migrations must create them
-- (copied there verbatim; this file is what the bus's own tests run), followed by the later
-- changes of migrations/outbox_*.sql. Times are epoch ms.
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
