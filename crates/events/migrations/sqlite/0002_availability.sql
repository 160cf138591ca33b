-- Booking owns seat inventory; events keeps booking's latest figure of available seats so that
-- listings show it. `availability_version` is the version of booking's inventory the figure
-- comes from (0: none reported yet, and the figure follows total_seats); a figure is stored
-- only if its version is higher, so redeliveries and late duplicates change nothing.
ALTER TABLE events ADD COLUMN available_seats INTEGER NOT NULL DEFAULT 0;
ALTER TABLE events ADD COLUMN availability_version INTEGER NOT NULL DEFAULT 0;
UPDATE events SET available_seats = total_seats;
