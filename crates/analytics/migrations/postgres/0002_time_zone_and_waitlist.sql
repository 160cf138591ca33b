-- Each event's IANA time zone (series roll up to its local hours, days and weeks; events
-- described before it existed are in UTC), and the number of buyers waiting on its
-- waitlist (an offer takes its entry off the list).
ALTER TABLE events ADD COLUMN time_zone TEXT NOT NULL DEFAULT 'UTC';
ALTER TABLE totals ADD COLUMN waitlist_length BIGINT NOT NULL DEFAULT 0;
