-- An event's orders by id: exports page through them by keyset (id > last), never OFFSET.
CREATE INDEX orders_by_event_id ON orders (event_id, id);
