-- One index fewer to write per order. An event's orders are found through orders_by_event_id
-- (event_id, id), which also serves the reads by event and status (the cancellation saga, the
-- audit).
DROP INDEX orders_by_event;
