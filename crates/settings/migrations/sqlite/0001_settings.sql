-- The settings service's tables. Times are epoch ms; documents are JSON text.

-- One document per (scope, scope id, namespace); `version` counts its writes.
CREATE TABLE documents (
    scope      TEXT NOT NULL,
    scope_id   BLOB NOT NULL,
    namespace  TEXT NOT NULL,
    version    INTEGER NOT NULL CHECK (version > 0),
    document   TEXT NOT NULL,
    updated_at INTEGER NOT NULL,
    updated_by BLOB NOT NULL,
    PRIMARY KEY (scope, scope_id, namespace)
);

-- Every write: who, when, the document before (NULL for the first) and after.
CREATE TABLE audit (
    seq       INTEGER PRIMARY KEY AUTOINCREMENT,
    scope     TEXT NOT NULL,
    scope_id  BLOB NOT NULL,
    namespace TEXT NOT NULL,
    version   INTEGER NOT NULL,
    actor     BLOB NOT NULL,
    at        INTEGER NOT NULL,
    previous  TEXT,
    document  TEXT NOT NULL
);
CREATE INDEX audit_by_document ON audit (scope, scope_id, namespace, seq);

-- Which organizer owns each event (from the events service's stream), for the event
-- scope's authorisation and its effective value.
CREATE TABLE event_owners (
    event_id     BLOB PRIMARY KEY,
    organizer_id BLOB NOT NULL
);

-- The domain events already applied, by envelope id.
CREATE TABLE applied_events (
    id         BLOB PRIMARY KEY,
    applied_at INTEGER NOT NULL
);

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
