-- Exports run in the background: the file is written to <data_dir>/exports/<id>.<ext>
-- and kept until the job is purged. Times are epoch ms.
CREATE TABLE export_jobs (
    id           UUID PRIMARY KEY NOT NULL,
    organizer_id UUID NOT NULL,
    kind         TEXT NOT NULL,
    format       TEXT NOT NULL,
    status       TEXT NOT NULL,
    rows_written BIGINT NOT NULL,
    error        TEXT,
    created_at   BIGINT NOT NULL,
    finished_at  BIGINT
);
CREATE INDEX export_jobs_by_organizer ON export_jobs (organizer_id, status);
CREATE INDEX export_jobs_by_status ON export_jobs (status, finished_at);
