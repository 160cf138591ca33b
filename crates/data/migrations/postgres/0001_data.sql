-- The data service's own rows: import jobs, their uploaded files and what each row did.
-- Times are epoch ms.

-- One import: who ran it, how, the uploaded file (kept until the job is purged) and, once
-- finished, its report.
CREATE TABLE import_jobs (
    id           UUID PRIMARY KEY NOT NULL,
    organizer_id UUID NOT NULL,
    role         TEXT NOT NULL,
    file_name    TEXT NOT NULL,
    mode         TEXT NOT NULL,
    status       TEXT NOT NULL,
    source       BYTEA,
    report       TEXT,
    created_at   BIGINT NOT NULL,
    finished_at  BIGINT
);
CREATE INDEX import_jobs_by_status ON import_jobs (status, created_at);

-- Each row of an import that reached the events service, recorded after its write: a
-- resumed job skips them.
CREATE TABLE import_rows (
    job_id     UUID NOT NULL,
    row_number BIGINT NOT NULL,
    event_id   UUID NOT NULL,
    outcome    TEXT NOT NULL,
    PRIMARY KEY (job_id, row_number)
);
