-- Issue 11, second round: the same version as migrations/postgres/0005_guards.sql, which pins
-- the search path of PostgreSQL's trigger functions. SQLite has no per-session schemas that
-- could shadow the store's tables in a trigger: nothing to change here.
SELECT 1;
