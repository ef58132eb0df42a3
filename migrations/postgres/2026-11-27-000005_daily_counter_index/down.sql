DROP INDEX item_counts_daily_tenant;
