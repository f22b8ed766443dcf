CREATE INDEX role_holdings_by_role ON role_holdings (role_id, held_until);
CREATE INDEX role_holdings_by_staff ON role_holdings (staff_id, held_until);
DROP INDEX role_holdings_by_role_from;
DROP INDEX role_holdings_now_by_staff;
DROP INDEX role_holdings_now_by_role;
DROP INDEX rota_shifts_by_replaced;
