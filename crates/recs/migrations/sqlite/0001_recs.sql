-- The recommendations service's projection of the domain events. Times are epoch ms.

-- Each event as the events service last described it.
CREATE TABLE catalogue (
    event_id     BLOB PRIMARY KEY NOT NULL,
    organizer_id BLOB NOT NULL,
    name         TEXT NOT NULL,
    description  TEXT,
    event_type   TEXT,
    tags         TEXT NOT NULL,
    city         TEXT,
    venue_id     BLOB,
    base_price   INTEGER NOT NULL,
    currency     TEXT NOT NULL,
    event_date   INTEGER NOT NULL,
    status       TEXT NOT NULL,
    updated_at   INTEGER NOT NULL
);

-- Who holds live orders for which event (a row exists while `orders` > 0).
CREATE TABLE ownership (
    user_id  BLOB NOT NULL,
    event_id BLOB NOT NULL,
    orders   INTEGER NOT NULL CHECK (orders > 0),
    last_at  INTEGER NOT NULL,
    PRIMARY KEY (user_id, event_id)
);
-- Recent sales per event (the popularity prior).
CREATE INDEX ownership_recent ON ownership (last_at, event_id);

-- Distinct buyers per event.
CREATE TABLE item_stats (
    event_id BLOB PRIMARY KEY NOT NULL,
    buyers   INTEGER NOT NULL
);

-- Distinct buyers of both a and b (each pair stored both ways), counting only buyers of at
-- most 50 events. Read only where `together` >= 3.
CREATE TABLE item_pairs (
    a        BLOB NOT NULL,
    b        BLOB NOT NULL,
    together INTEGER NOT NULL,
    PRIMARY KEY (a, b)
);
CREATE INDEX item_pairs_top ON item_pairs (a, together);

-- The domain events already applied, by envelope id.
CREATE TABLE applied_events (
    id         BLOB PRIMARY KEY NOT NULL,
    applied_at INTEGER NOT NULL
);
