-- The IANA time zone each event's local times follow (as the tz database names it);
-- events created before it existed are in UTC.
ALTER TABLE events ADD COLUMN time_zone TEXT NOT NULL DEFAULT 'UTC';
