-- Ledger schema v1. Money is stored as INTEGER minor units of the row's currency, so sums
-- in SQL stay exact. Times are RFC 3339 UTC text.

CREATE TABLE sales (
    sale_id          TEXT PRIMARY KEY,
    channel          TEXT NOT NULL CHECK (channel IN ('store', 'online')),
    register_id      TEXT,
    occurred_at      TEXT NOT NULL,
    currency         TEXT NOT NULL,
    order_discount   INTEGER NOT NULL,
    shipping_amount  INTEGER NOT NULL,
    shipping_tax     INTEGER NOT NULL,
    total            INTEGER NOT NULL,
    fingerprint      TEXT NOT NULL,
    source           TEXT NOT NULL DEFAULT 'lan',
    recorded_at      TEXT NOT NULL,
    recorded_by      TEXT NOT NULL
);

CREATE TABLE sale_lines (
    sale_id          TEXT NOT NULL REFERENCES sales(sale_id),
    line_no          INTEGER NOT NULL,
    line_id          TEXT NOT NULL,
    sku              TEXT NOT NULL,
    gtin             TEXT,
    description      TEXT NOT NULL,
    category         TEXT,
    quantity         INTEGER NOT NULL CHECK (quantity > 0),
    unit_price       INTEGER NOT NULL CHECK (unit_price >= 0),
    discount         INTEGER NOT NULL CHECK (discount >= 0),
    order_discount   INTEGER NOT NULL CHECK (order_discount >= 0),
    tax              INTEGER NOT NULL CHECK (tax >= 0),
    paid             INTEGER NOT NULL CHECK (paid >= 0),
    final_sale       INTEGER NOT NULL,
    PRIMARY KEY (sale_id, line_id)
);

CREATE TABLE sale_tenders (
    sale_id          TEXT NOT NULL REFERENCES sales(sale_id),
    tender_no        INTEGER NOT NULL,
    tender_id        TEXT NOT NULL,
    type             TEXT NOT NULL CHECK (type IN ('card', 'cash', 'gift_card', 'store_credit')),
    amount           INTEGER NOT NULL CHECK (amount >= 0),
    payment_token    TEXT,
    auth_code        TEXT,
    card_brand       TEXT,
    last4            TEXT,
    PRIMARY KEY (sale_id, tender_id)
);

CREATE TABLE returns (
    return_id        TEXT PRIMARY KEY,
    sale_id          TEXT REFERENCES sales(sale_id),
    kind             TEXT NOT NULL CHECK (kind IN ('receipt', 'no_receipt', 'goodwill')),
    status           TEXT NOT NULL CHECK (status IN ('pending', 'settled', 'declined')),
    offline          INTEGER NOT NULL,
    currency         TEXT NOT NULL,
    refund_to        TEXT NOT NULL,
    subtotal         INTEGER NOT NULL,
    discount         INTEGER NOT NULL,
    tax              INTEGER NOT NULL,
    shipping_amount  INTEGER NOT NULL DEFAULT 0,
    shipping_tax     INTEGER NOT NULL DEFAULT 0,
    total            INTEGER NOT NULL CHECK (total >= 0),
    reason           TEXT,
    note             TEXT,
    approved_by      TEXT,
    client_id        TEXT NOT NULL,
    register_id      TEXT,
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL,
    processor_ref    TEXT,
    erp_ref          TEXT,
    decline_reason   TEXT
);
CREATE INDEX returns_by_sale ON returns(sale_id);
CREATE INDEX returns_pending_offline ON returns(status, offline);

CREATE TABLE return_lines (
    return_id        TEXT NOT NULL REFERENCES returns(return_id),
    sale_id          TEXT NOT NULL,
    line_id          TEXT NOT NULL,
    quantity         INTEGER NOT NULL CHECK (quantity > 0),
    gross            INTEGER NOT NULL,
    amount           INTEGER NOT NULL CHECK (amount >= 0),
    tax              INTEGER NOT NULL CHECK (tax >= 0),
    reason           TEXT,
    restock          INTEGER NOT NULL,
    PRIMARY KEY (return_id, line_id),
    FOREIGN KEY (sale_id, line_id) REFERENCES sale_lines(sale_id, line_id)
);
CREATE INDEX return_lines_by_sale_line ON return_lines(sale_id, line_id);

CREATE TABLE return_tenders (
    return_id         TEXT NOT NULL REFERENCES returns(return_id),
    tender_no         INTEGER NOT NULL,
    type              TEXT NOT NULL CHECK (type IN ('card', 'cash', 'store_credit')),
    amount            INTEGER NOT NULL CHECK (amount >= 0),
    source_tender_id  TEXT,
    payment_token     TEXT,
    auth_code         TEXT,
    store_credit_code TEXT,
    PRIMARY KEY (return_id, tender_no)
);

-- What each refund drew from each original tender: the caps for later partial returns.
CREATE TABLE return_tender_draws (
    return_id        TEXT NOT NULL REFERENCES returns(return_id),
    sale_id          TEXT NOT NULL,
    tender_id        TEXT NOT NULL,
    amount           INTEGER NOT NULL CHECK (amount > 0),
    PRIMARY KEY (return_id, tender_id),
    FOREIGN KEY (sale_id, tender_id) REFERENCES sale_tenders(sale_id, tender_id)
);
CREATE INDEX draws_by_sale ON return_tender_draws(sale_id);

CREATE TABLE store_credits (
    code             TEXT PRIMARY KEY,
    return_id        TEXT NOT NULL REFERENCES returns(return_id),
    currency         TEXT NOT NULL,
    amount           INTEGER NOT NULL,
    issued_at        TEXT NOT NULL
);

CREATE TABLE idempotency_keys (
    client_id        TEXT NOT NULL,
    key              TEXT NOT NULL,
    fingerprint      TEXT NOT NULL,
    status           INTEGER NOT NULL,
    response         TEXT NOT NULL,
    created_at       TEXT NOT NULL,
    PRIMARY KEY (client_id, key)
);
CREATE INDEX idempotency_by_age ON idempotency_keys(created_at);

-- Gapless per-gateway counters (outbox seq), kept apart so pruning never reuses a number.
CREATE TABLE counters (
    name             TEXT PRIMARY KEY,
    value            INTEGER NOT NULL
);
INSERT INTO counters (name, value) VALUES ('outbox_seq', 0), ('audit_seq', 0);

CREATE TABLE outbox (
    seq              INTEGER PRIMARY KEY,
    event_id         TEXT NOT NULL UNIQUE,
    type             TEXT NOT NULL,
    occurred_at      TEXT NOT NULL,
    envelope         TEXT NOT NULL,
    state            TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'acked')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    last_sent_at     TEXT,
    acked_at         TEXT,
    ack_status       TEXT
);
CREATE INDEX outbox_pending ON outbox(state, seq);

CREATE TABLE audit_log (
    seq              INTEGER PRIMARY KEY,
    at               TEXT NOT NULL,
    actor            TEXT NOT NULL,
    action           TEXT NOT NULL,
    subject          TEXT NOT NULL,
    detail           TEXT NOT NULL,
    prev_hash        TEXT NOT NULL,
    hash             TEXT NOT NULL
);

CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;

CREATE TABLE clients (
    client_id        TEXT PRIMARY KEY,
    name             TEXT NOT NULL,
    role             TEXT NOT NULL CHECK (role IN ('register', 'handheld', 'admin', 'monitor')),
    secret_hash      TEXT NOT NULL,
    created_at       TEXT NOT NULL,
    revoked_at       TEXT
);

CREATE TABLE managers (
    manager_id       TEXT PRIMARY KEY,
    name             TEXT NOT NULL,
    pin_hash         TEXT,
    badge_hash       TEXT UNIQUE,
    created_at       TEXT NOT NULL,
    removed_at       TEXT,
    failed_pins      INTEGER NOT NULL DEFAULT 0,
    locked_until     TEXT
);
