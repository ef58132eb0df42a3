-- A tenant's time-range count sums its daily counters from this covering index.
CREATE INDEX item_counts_daily_tenant ON item_counts_daily (project_id, status, day, n);
