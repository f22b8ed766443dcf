-- The overrides that replace a person, for what a hand-over tells the people arriving
-- (how long they hold the bleep) without reading every shift of their roles.
CREATE INDEX rota_shifts_by_replaced ON rota_shifts (replaces, starts_at);

-- Who holds what now is read by role and by person among the holdings not ended, which
-- are a few hundred rows however long the history. Indexing only those keeps a
-- hand-over's writes to a few pages: ending a holding drops it from these small indexes
-- instead of moving an entry in an index of every holding ever (a year of a 500-role
-- hospital is 365,000), and no index holds `held_until`, so ending one touches no other.
CREATE INDEX role_holdings_now_by_role ON role_holdings (role_id) WHERE held_until IS NULL;
CREATE INDEX role_holdings_now_by_staff ON role_holdings (staff_id) WHERE held_until IS NULL;
-- A role's history, newest first (the admin's view of who held it).
CREATE INDEX role_holdings_by_role_from ON role_holdings (role_id, held_from);
DROP INDEX role_holdings_by_role;
DROP INDEX role_holdings_by_staff;
