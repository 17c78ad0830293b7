-- Forward migration used by sql-checks.toml: add orders.archived_at, and an index to find
-- the orders not archived yet, oldest first.
--
-- The runbook runs this file in one transaction: either both statements apply or neither
-- does. IF NOT EXISTS makes a second run a no-op. There is no "down" script: to undo it,
-- write another forward migration (DROP COLUMN) and review it like this one.
-- (CREATE INDEX CONCURRENTLY cannot run inside a transaction, hence the plain form; on a
-- large table, create the index separately first.)

ALTER TABLE orders ADD COLUMN IF NOT EXISTS archived_at timestamptz;

CREATE INDEX IF NOT EXISTS orders_unarchived_created_at_idx
    ON orders (created_at)
    WHERE archived_at IS NULL;
