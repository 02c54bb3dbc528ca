-- Customer reference and KPI sources (schema v6).
-- `customer_ref`: an opaque, pseudonymous customer id a register may send with a sale (a
-- loyalty id or a hash, never a name, e-mail or card number: the API refuses those). It
-- feeds the repeat-purchase KPI, which looks a customer's sales up by it.
ALTER TABLE sales ADD COLUMN customer_ref TEXT;
CREATE INDEX sales_by_customer ON sales(customer_ref, occurred_at)
    WHERE customer_ref IS NOT NULL;
-- The KPIs read refunds by their creation time.
CREATE INDEX returns_by_created ON returns(created_at);
-- Every receipt look-up (`POST /v1/returns/lookup`) that resolved to a sale: the start of
-- the refund processing time KPI (look-up or scan to refund confirmation). Only the sale
-- id and the time are kept, never the code that was scanned or typed.
CREATE TABLE sale_lookups (
    sale_id          TEXT NOT NULL,
    looked_up_at     TEXT NOT NULL
);
CREATE INDEX sale_lookups_by_sale ON sale_lookups(sale_id, looked_up_at);
CREATE INDEX sale_lookups_by_age ON sale_lookups(looked_up_at);
