-- The W3C traceparent of the request behind each domain event (NULL unless traces are
-- exported), so that consumers in other processes continue its trace.
ALTER TABLE outbox ADD COLUMN traceparent TEXT;
