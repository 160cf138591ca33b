-- Booking owns seat inventory; events keeps booking's latest figure of available seats so that
-- listings show it. `availability_version` is the version of booking's inventory the figure
-- comes from (0: none reported yet, and the figure follows total_seats); a figure is stored
-- only if its version is higher, so redeliveries and late duplicates change nothing.
ALTER TABLE events ADD COLUMN available_seats BIGINT;
UPDATE events SET available_seats = total_seats;
ALTER TABLE events ALTER COLUMN available_seats SET NOT NULL;
ALTER TABLE events ADD COLUMN availability_version BIGINT NOT NULL DEFAULT 0;
