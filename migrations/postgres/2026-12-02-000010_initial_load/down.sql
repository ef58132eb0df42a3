DROP TABLE deferred_for_initial_load;
