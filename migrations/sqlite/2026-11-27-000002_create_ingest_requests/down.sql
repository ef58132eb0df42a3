DROP TABLE ingest_requests;
