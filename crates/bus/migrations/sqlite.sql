-- The outbox and consumer positions, as every service's SQLite migrations must create them
-- (copied there verbatim; this file is what the bus's own tests run), followed by the later
-- changes of migrations/outbox_*.sql. Times are epoch ms.
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
