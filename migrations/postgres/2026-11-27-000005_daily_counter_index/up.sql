-- A tenant's time-range count sums its daily counters; with `n` in the index that sum is an
-- index-only scan instead of a visit to every counter row's page.
CREATE INDEX item_counts_daily_tenant ON item_counts_daily (project_id, status, day) INCLUDE (n);
