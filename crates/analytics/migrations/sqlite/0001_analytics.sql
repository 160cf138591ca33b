-- The analytics service's projection of the domain events. Times are epoch ms (UTC).

-- Each event as the events service last described it.
CREATE TABLE events (
    event_id     BLOB PRIMARY KEY NOT NULL,
    organizer_id BLOB NOT NULL,
    name         TEXT NOT NULL,
    currency     TEXT NOT NULL,
    status       TEXT NOT NULL,
    sale_start   INTEGER NOT NULL,
    created_at   INTEGER NOT NULL,
    deleted      INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX events_organizer ON events (organizer_id);

-- Each event's running totals, from booking's stream. The inventory columns are those of
-- the highest availability version seen; the counters move by each change and its reverse.
CREATE TABLE totals (
    event_id        BLOB PRIMARY KEY NOT NULL,
    capacity        INTEGER NOT NULL DEFAULT 0,
    available       INTEGER NOT NULL DEFAULT 0,
    held            INTEGER NOT NULL DEFAULT 0,
    sold            INTEGER NOT NULL DEFAULT 0,
    version         INTEGER NOT NULL DEFAULT 0,
    orders          INTEGER NOT NULL DEFAULT 0,
    tickets         INTEGER NOT NULL DEFAULT 0,
    cancellations   INTEGER NOT NULL DEFAULT 0,
    holds_created   INTEGER NOT NULL DEFAULT 0,
    holds_expired   INTEGER NOT NULL DEFAULT 0,
    holds_released  INTEGER NOT NULL DEFAULT 0,
    holds_cancelled INTEGER NOT NULL DEFAULT 0,
    holds_converted INTEGER NOT NULL DEFAULT 0,
    waitlist_offers INTEGER NOT NULL DEFAULT 0,
    sold_out_at     INTEGER
);

-- Money per event and currency (never summed across currencies).
CREATE TABLE money (
    event_id BLOB NOT NULL,
    currency TEXT NOT NULL,
    gross    INTEGER NOT NULL DEFAULT 0,
    refunded INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (event_id, currency)
);

-- Activity per event and UTC minute (rolled up to hours, days and weeks when read).
CREATE TABLE minutes (
    event_id          BLOB NOT NULL,
    minute            INTEGER NOT NULL,
    holds             INTEGER NOT NULL DEFAULT 0,
    orders_placed     INTEGER NOT NULL DEFAULT 0,
    orders_cancelled  INTEGER NOT NULL DEFAULT 0,
    tickets_sold      INTEGER NOT NULL DEFAULT 0,
    tickets_cancelled INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (event_id, minute)
);

-- Money per event, UTC minute and currency.
CREATE TABLE minute_money (
    event_id BLOB NOT NULL,
    minute   INTEGER NOT NULL,
    currency TEXT NOT NULL,
    gross    INTEGER NOT NULL DEFAULT 0,
    refunded INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (event_id, minute, currency)
);

-- The domain events already applied, by envelope id.
CREATE TABLE applied_events (
    id         BLOB PRIMARY KEY NOT NULL,
    applied_at INTEGER NOT NULL
);
