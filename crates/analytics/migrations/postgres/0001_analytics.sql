-- The analytics service's projection of the domain events. Times are epoch ms (UTC).

-- Each event as the events service last described it.
CREATE TABLE events (
    event_id     UUID PRIMARY KEY,
    organizer_id UUID NOT NULL,
    name         TEXT NOT NULL,
    currency     TEXT NOT NULL,
    status       TEXT NOT NULL,
    sale_start   BIGINT NOT NULL,
    created_at   BIGINT NOT NULL,
    deleted      BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX events_organizer ON events (organizer_id);

-- Each event's running totals, from booking's stream. The inventory columns are those of
-- the highest availability version seen; the counters move by each change and its reverse.
CREATE TABLE totals (
    event_id        UUID PRIMARY KEY,
    capacity        BIGINT NOT NULL DEFAULT 0,
    available       BIGINT NOT NULL DEFAULT 0,
    held            BIGINT NOT NULL DEFAULT 0,
    sold            BIGINT NOT NULL DEFAULT 0,
    version         BIGINT NOT NULL DEFAULT 0,
    orders          BIGINT NOT NULL DEFAULT 0,
    tickets         BIGINT NOT NULL DEFAULT 0,
    cancellations   BIGINT NOT NULL DEFAULT 0,
    holds_created   BIGINT NOT NULL DEFAULT 0,
    holds_expired   BIGINT NOT NULL DEFAULT 0,
    holds_released  BIGINT NOT NULL DEFAULT 0,
    holds_cancelled BIGINT NOT NULL DEFAULT 0,
    holds_converted BIGINT NOT NULL DEFAULT 0,
    waitlist_offers BIGINT NOT NULL DEFAULT 0,
    sold_out_at     BIGINT
);

-- Money per event and currency (never summed across currencies).
CREATE TABLE money (
    event_id UUID NOT NULL,
    currency TEXT NOT NULL,
    gross    BIGINT NOT NULL DEFAULT 0,
    refunded BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (event_id, currency)
);

-- Activity per event and UTC minute (rolled up to hours, days and weeks when read).
CREATE TABLE minutes (
    event_id          UUID NOT NULL,
    minute            BIGINT NOT NULL,
    holds             BIGINT NOT NULL DEFAULT 0,
    orders_placed     BIGINT NOT NULL DEFAULT 0,
    orders_cancelled  BIGINT NOT NULL DEFAULT 0,
    tickets_sold      BIGINT NOT NULL DEFAULT 0,
    tickets_cancelled BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (event_id, minute)
);

-- Money per event, UTC minute and currency.
CREATE TABLE minute_money (
    event_id UUID NOT NULL,
    minute   BIGINT NOT NULL,
    currency TEXT NOT NULL,
    gross    BIGINT NOT NULL DEFAULT 0,
    refunded BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (event_id, minute, currency)
);

-- The domain events already applied, by envelope id.
CREATE TABLE applied_events (
    id         UUID PRIMARY KEY,
    applied_at BIGINT NOT NULL
);
