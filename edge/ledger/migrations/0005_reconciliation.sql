-- Reconciliation (schema v5, contract v1.1): what the gateway found when it compared HQ's
-- digests (and its own checkpoint) with the ledger, kept so the same mismatch is known
-- again, an operator's acceptance is remembered, and reports can be sent again as sent.
--
-- Amounts here are decimal TEXT (as on the wire), not minor units like the rest of the
-- ledger: half of them come from HQ and need not fit the currency's minor unit (rounding
-- drift is one of the things this finds), and a currency mismatch compares two currencies.

-- One row per distinct mismatch, recognised again by `key` (the domain's stable key).
-- `refund_at` (when the refund was made: HQ's time when HQ lists it, as digests select by
-- it) places it in a digest's period, so a later digest of that period that no longer
-- shows it resolves it. `detected_at` starts the current open spell (a reopened mismatch
-- gets a new one), `first_detected_at` the first ever, `last_seen_at` the latest run that
-- found it. `customer_ref`, `refund_kind` and `category` let a later run tell a repeat.
CREATE TABLE recon_mismatches (
    mismatch_id       TEXT PRIMARY KEY,
    key               TEXT NOT NULL UNIQUE,
    scope             TEXT NOT NULL CHECK (scope IN ('digest', 'checkpoint')),
    kind              TEXT NOT NULL CHECK (kind IN (
                          'unconfirmed', 'missing-at-hq', 'unknown-to-store',
                          'amount-mismatch', 'currency-mismatch', 'missing-reference',
                          'status-mismatch', 'duplicate')),
    return_id         TEXT,
    external_ref      TEXT,
    sale_id           TEXT,
    currency          TEXT NOT NULL,
    store_amount      TEXT,
    hq_amount         TEXT,
    delta             TEXT,
    at_risk           TEXT NOT NULL,
    class             TEXT NOT NULL CHECK (class IN (
                          'integration', 'process', 'both', 'undetermined')),
    pattern           TEXT,
    diagnosis         TEXT NOT NULL,
    customer_ref      TEXT,
    refund_kind       TEXT,
    category          TEXT,
    refund_at         TEXT NOT NULL,
    first_detected_at TEXT NOT NULL,
    detected_at       TEXT NOT NULL,
    last_seen_at      TEXT NOT NULL,
    state             TEXT NOT NULL CHECK (state IN ('open', 'resolved', 'accepted')),
    resolved_at       TEXT,
    accepted_at       TEXT,
    accepted_by       TEXT,
    accept_reason     TEXT,
    reopened          INTEGER NOT NULL DEFAULT 0 CHECK (reopened >= 0),
    alert_raised      INTEGER NOT NULL DEFAULT 0,
    last_report_id    TEXT
);
CREATE INDEX recon_mismatches_by_state ON recon_mismatches(state, scope, refund_at);
CREATE INDEX recon_mismatches_by_return ON recon_mismatches(return_id);
CREATE INDEX recon_mismatches_by_detection ON recon_mismatches(last_seen_at);

-- Every report as it was sent (`body` is the exact payload), one per digest and one per
-- checkpoint run; `published_at` stays NULL until it was handed to the broker.
CREATE TABLE recon_reports (
    report_id         TEXT PRIMARY KEY,
    digest_id         TEXT UNIQUE,
    period_from       TEXT NOT NULL,
    period_to         TEXT NOT NULL,
    generated_at      TEXT NOT NULL,
    checked           INTEGER NOT NULL CHECK (checked >= 0),
    matched           INTEGER NOT NULL CHECK (matched >= 0),
    mismatches        INTEGER NOT NULL CHECK (mismatches >= 0),
    body              TEXT NOT NULL,
    published_at      TEXT
);
CREATE INDEX recon_reports_by_time ON recon_reports(generated_at);
CREATE INDEX recon_reports_unpublished ON recon_reports(generated_at) WHERE published_at IS NULL;

-- Digests applied, by id: the same digest again gets the same report again (idempotent);
-- another body under a used id is refused. `fingerprint` is the SHA-256 of the payload.
CREATE TABLE recon_digests (
    digest_id         TEXT PRIMARY KEY,
    fingerprint       TEXT NOT NULL,
    period_from       TEXT NOT NULL,
    period_to         TEXT NOT NULL,
    generated_at      TEXT NOT NULL,
    entries           INTEGER NOT NULL CHECK (entries >= 0),
    received_at       TEXT NOT NULL,
    report_id         TEXT NOT NULL REFERENCES recon_reports(report_id)
);

-- The checkpoint's schedule (one row), so a restart neither skips nor repeats a run.
CREATE TABLE recon_checkpoint (
    id                INTEGER PRIMARY KEY CHECK (id = 1),
    last_run_at       TEXT,
    last_cutoff       TEXT,
    next_due_at       TEXT NOT NULL,
    last_report_id    TEXT
);
