-- Answers of ingest requests sent with an Idempotency-Key, kept for a day so that a retried
-- request is answered as the first time. Keyed by tenant like every table here.
CREATE TABLE ingest_requests (
    project_id      text   COLLATE "C" NOT NULL,
    idempotency_key text   COLLATE "C" NOT NULL,
    request_hash    text   NOT NULL,
    status_code     integer NOT NULL,
    response_body   text   NOT NULL,
    created_at_us   bigint NOT NULL,
    PRIMARY KEY (project_id, idempotency_key)
);
CREATE INDEX ingest_requests_expiry ON ingest_requests (project_id, created_at_us);
