-- The recommendations service's projection of the domain events. Times are epoch ms.

-- Each event as the events service last described it.
CREATE TABLE catalogue (
    event_id     UUID PRIMARY KEY,
    organizer_id UUID NOT NULL,
    name         TEXT NOT NULL,
    description  TEXT,
    event_type   TEXT,
    tags         TEXT NOT NULL,
    city         TEXT,
    venue_id     UUID,
    base_price   BIGINT NOT NULL,
    currency     TEXT NOT NULL,
    event_date   BIGINT NOT NULL,
    status       TEXT NOT NULL,
    updated_at   BIGINT NOT NULL
);

-- Who holds live orders for which event (a row exists while `orders` > 0).
CREATE TABLE ownership (
    user_id  UUID NOT NULL,
    event_id UUID NOT NULL,
    orders   BIGINT NOT NULL CHECK (orders > 0),
    last_at  BIGINT NOT NULL,
    PRIMARY KEY (user_id, event_id)
);
-- Recent sales per event (the popularity prior).
CREATE INDEX ownership_recent ON ownership (last_at, event_id);

-- Distinct buyers per event.
CREATE TABLE item_stats (
    event_id UUID PRIMARY KEY,
    buyers   BIGINT NOT NULL
);

-- Distinct buyers of both a and b (each pair stored both ways), counting only buyers of at
-- most 50 events. Read only where `together` >= 3.
CREATE TABLE item_pairs (
    a        UUID NOT NULL,
    b        UUID NOT NULL,
    together BIGINT NOT NULL,
    PRIMARY KEY (a, b)
);
CREATE INDEX item_pairs_top ON item_pairs (a, together);

-- The domain events already applied, by envelope id.
CREATE TABLE applied_events (
    id         UUID PRIMARY KEY,
    applied_at BIGINT NOT NULL
);
