-- A buyer's confirmed orders, found by the buyer first (the per-user ticket limit, checked on
-- every hold, reads them by buyer alone). Keyed (event, buyer), a planner with stale statistics
-- scanned the whole index for the buyer.
DROP INDEX orders_by_event_user;
CREATE INDEX orders_of_user ON orders (user_id, event_id) WHERE status = 'confirmed';
