"""The HQ store's tables, for SQLite (one instance) and PostgreSQL (several).

This is the schema as the newest migration leaves it; the migrations in
`edge/hq/migrations/versions/` are what create and change it in a database. The
constraints are what keep several instances honest: an event is held once (`event_id`
primary key) and a refund once (`return_id` primary key), so concurrent inserts of the same
one leave exactly one row whoever commits first.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    Index,
    Integer,
    MetaData,
    Table,
    Text,
    text,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

metadata = MetaData()

events = Table(
    "events",
    metadata,
    Column("event_id", Text, primary_key=True),
    Column("store_id", Text, nullable=False),
    Column("gateway_id", Text, nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("type", Text, nullable=False),
    Column("occurred_at", Text, nullable=False),
    Column("received_at", Text, nullable=False),
    Column("envelope", Text, nullable=False),
    Index("events_by_stream", "store_id", "gateway_id", "seq"),
)

streams = Table(
    "streams",
    metadata,
    Column("store_id", Text, primary_key=True),
    Column("gateway_id", Text, primary_key=True),
    Column("contiguous_through", BigInteger, nullable=False, server_default=text("0")),
    Column("high_seq", BigInteger, nullable=False, server_default=text("0")),
    Column("received", BigInteger, nullable=False, server_default=text("0")),
    Column("duplicates", BigInteger, nullable=False, server_default=text("0")),
    Column("gap_since", Text),
    Column("last_event_at", Text),
)

refunds = Table(
    "refunds",
    metadata,
    Column("return_id", Text, primary_key=True),
    Column("event_id", Text, nullable=False),
    Column("store_id", Text, nullable=False),
    Column("gateway_id", Text, nullable=False),
    Column("currency", Text, nullable=False),
    Column("total", Text, nullable=False),  # a decimal string, as on the wire
    Column("request", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("processor_ref", Text),
    Column("erp_ref", Text),
    Column("reason", Text),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("received_at", Text, nullable=False),
    Column("decided_at", Text),
    # who may call the processor for it now: set by a conditional UPDATE, until the lease ends
    Column("claimed_by", Text),
    Column("claimed_until", BigInteger),  # epoch milliseconds
    Column("claims", Integer, nullable=False, server_default=text("0")),  # each: a call, at most
    Column("decided_by", Text),
    CheckConstraint("status IN ('received', 'settled', 'declined')", name="refunds_status"),
    Index(
        "refunds_open",
        "status",
        sqlite_where=text("status = 'received'"),
        postgresql_where=text("status = 'received'"),
    ),
)

orders = Table(
    "orders",
    metadata,
    Column("sale_id", Text, primary_key=True),
    Column("sale", Text, nullable=False),
    Column("loaded_at", Text, nullable=False),
)

gateways = Table(
    "gateways",
    metadata,
    Column("store_id", Text, primary_key=True),
    Column("gateway_id", Text, primary_key=True),
    Column("state", Text),
    Column("bd_seq", BigInteger),
    Column("version", Text),
    Column("state_at", Text),
    Column("health", Text),
    Column("health_at", Text),
)

alerts = Table(
    "alerts",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("store_id", Text, nullable=False),
    Column("gateway_id", Text, nullable=False),
    Column("alert", Text, nullable=False),
    Column("subject", Text, nullable=False),
    Column("severity", Text, nullable=False),
    Column("state", Text, nullable=False),
    Column("detail", Text, nullable=False),
    Column("at", Text, nullable=False),
)


# ---- reconciliation (migration 0003) ------------------------------------------------------

# What the (simulated) ERP and storefront hold for a refund: one row per ERP document, its
# digest entry as JSON (`entry`), and the system's own document when a profile mapped it.
# `presence` 'dropped' marks a refund the integration lost (HQ's digest then omits it).
erp_documents = Table(
    "erp_documents",
    metadata,
    Column("doc_id", Text, primary_key=True),
    Column("store_id", Text, nullable=False),
    Column("gateway_id", Text),  # null: every gateway of the store
    Column("return_id", Text),  # null: it never came through a gateway
    Column("created_at", Text, nullable=False),
    Column("presence", Text, nullable=False, server_default=text("'posted'")),
    Column("entry", Text, nullable=False),
    Column("profile", Text),
    Column("document", Text),
    Column("injected", Text),
    Column("recorded_at", Text, nullable=False),
    CheckConstraint("presence IN ('posted', 'dropped')", name="erp_documents_presence"),
    Index("erp_documents_by_store", "store_id", "created_at"),
    Index("erp_documents_by_return", "return_id"),
)

# Digests sent; `slot` (store/gateway/period end) is set for scheduled ones, so that of
# several instances only the one whose insert wins publishes it.
recon_digests = Table(
    "recon_digests",
    metadata,
    Column("digest_id", Text, primary_key=True),
    Column("store_id", Text, nullable=False),
    Column("gateway_id", Text, nullable=False),
    Column("period_from", Text, nullable=False),
    Column("period_to", Text, nullable=False),
    Column("generated_at", Text, nullable=False),
    Column("entries", Integer, nullable=False),
    Column("trigger", Text, nullable=False),
    Column("slot", Text, unique=True),
    Column("instance", Text),
)

recon_reports = Table(
    "recon_reports",
    metadata,
    Column("report_id", Text, primary_key=True),
    Column("store_id", Text, nullable=False),
    Column("gateway_id", Text, nullable=False),
    Column("digest_id", Text),
    Column("period_from", Text, nullable=False),
    Column("period_to", Text, nullable=False),
    Column("generated_at", Text, nullable=False),
    Column("received_at", Text, nullable=False),
    Column("checked", Integer, nullable=False),
    Column("matched", Integer, nullable=False),
    Column("summary", Text, nullable=False),
    Column("body", Text, nullable=False),
    Column("received_by", Text),
    Index("recon_reports_by_gateway", "store_id", "gateway_id", "generated_at"),
)

# The mismatches of every report, flattened for the fleet view: one row per mismatch of a
# gateway, updated when a later report lists it again, resolved when a later report that
# covers its period no longer does.
recon_mismatches = Table(
    "recon_mismatches",
    metadata,
    Column("store_id", Text, primary_key=True),
    Column("gateway_id", Text, primary_key=True),
    Column("mismatch_id", Text, primary_key=True),
    Column("report_id", Text, nullable=False),
    Column("kind", Text, nullable=False),
    Column("class", Text, nullable=False),
    Column("pattern", Text),
    Column("currency", Text, nullable=False),
    Column("delta", Text),  # decimal strings, as on the wire
    Column("at_risk", Text, nullable=False),
    Column("return_id", Text),
    Column("external_ref", Text),
    Column("period_from", Text, nullable=False),
    Column("period_to", Text, nullable=False),
    Column("detected_at", Text, nullable=False),
    Column("last_seen_at", Text, nullable=False),
    Column("state", Text, nullable=False),
    CheckConstraint("state IN ('open', 'resolved')", name="recon_mismatches_state"),
    Index("recon_mismatches_open", "state", "store_id"),
)


def insert(conn: AsyncConnection, table: Table) -> postgresql.Insert | sqlite.Insert:
    """The database's own INSERT, which has ON CONFLICT DO NOTHING / DO UPDATE."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)
