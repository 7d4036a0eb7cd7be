-- A queue (marks inserted, then deleted by the position loop): vacuum must not truncate its trailing empty
-- pages, which takes an exclusive lock every marker and pass then waits on.
ALTER TABLE {schema}.pending_positions SET (vacuum_truncate = false);
