-- Second database of the compose PostgreSQL: the memory catalog (MEMORIES_CATALOG_URL).
-- Dagster's run, event-log and schedule storage use the POSTGRES_DB database.
CREATE DATABASE memory_catalog;
