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


def insert(conn: AsyncConnection, table: Table) -> postgresql.Insert | sqlite.Insert:
    """The database's own INSERT, which has ON CONFLICT DO NOTHING / DO UPDATE."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)
