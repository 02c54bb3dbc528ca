"""The ledger: sales, refunds, idempotency keys, outbox and audit log in one SQLite file."""
