-- Answers of ingest requests sent with an Idempotency-Key, kept for a day.
CREATE TABLE ingest_requests (
    project_id      TEXT    NOT NULL,
    idempotency_key TEXT    NOT NULL,
    request_hash    TEXT    NOT NULL,
    status_code     INTEGER NOT NULL,
    response_body   TEXT    NOT NULL,
    created_at_us   BIGINT  NOT NULL,
    PRIMARY KEY (project_id, idempotency_key)
);
CREATE INDEX ingest_requests_expiry ON ingest_requests (project_id, created_at_us);
