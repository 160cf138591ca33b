-- The settings service's tables. Times are epoch ms; documents are JSONB.

-- One document per (scope, scope id, namespace); `version` counts its writes.
CREATE TABLE documents (
    scope      TEXT NOT NULL,
    scope_id   UUID NOT NULL,
    namespace  TEXT NOT NULL,
    version    BIGINT NOT NULL CHECK (version > 0),
    document   JSONB NOT NULL,
    updated_at BIGINT NOT NULL,
    updated_by UUID NOT NULL,
    PRIMARY KEY (scope, scope_id, namespace)
);

-- Every write: who, when, the document before (NULL for the first) and after.
CREATE TABLE audit (
    seq       BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    scope     TEXT NOT NULL,
    scope_id  UUID NOT NULL,
    namespace TEXT NOT NULL,
    version   BIGINT NOT NULL,
    actor     UUID NOT NULL,
    at        BIGINT NOT NULL,
    previous  JSONB,
    document  JSONB NOT NULL
);
CREATE INDEX audit_by_document ON audit (scope, scope_id, namespace, seq);

-- Which organizer owns each event (from the events service's stream), for the event
-- scope's authorisation and its effective value.
CREATE TABLE event_owners (
    event_id     UUID PRIMARY KEY,
    organizer_id UUID NOT NULL
);

-- The domain events already applied, by envelope id.
CREATE TABLE applied_events (
    id         UUID PRIMARY KEY,
    applied_at BIGINT NOT NULL
);

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
