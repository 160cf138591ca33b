-- A buyer's live holds, found by the buyer alone: looked up by (event, buyer), a planner with
-- stale statistics may pick `holds_live` and walk every live hold of an event in a rush.
DROP INDEX holds_by_user;
CREATE INDEX holds_of_user ON holds (user_id) WHERE status = 'active';
