-- A buyer's confirmed orders of one event (the per-user ticket limit, checked on every hold).
-- Without it the planner may walk every confirmed order of the event through orders_by_event,
-- which makes each hold of an on-sale rush slower than the one before.
CREATE INDEX orders_by_event_user ON orders (event_id, user_id) WHERE status = 'confirmed';
