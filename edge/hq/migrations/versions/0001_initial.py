"""The tables as the first HQ store made them (plain SQLite, before migrations).

Every table and index is created only if missing, so a store made by that version is
adopted as it is and then upgraded like any other.

Revision ID: 0001
Revises: none
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

OPEN = sa.text("status = 'received'")


def upgrade() -> None:
    op.create_table(
        "events",
        sa.Column("event_id", sa.Text, primary_key=True),
        sa.Column("store_id", sa.Text, nullable=False),
        sa.Column("gateway_id", sa.Text, nullable=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("type", sa.Text, nullable=False),
        sa.Column("occurred_at", sa.Text, nullable=False),
        sa.Column("received_at", sa.Text, nullable=False),
        sa.Column("envelope", sa.Text, nullable=False),
        if_not_exists=True,
    )
    op.create_index(
        "events_by_stream", "events", ["store_id", "gateway_id", "seq"], if_not_exists=True
    )
    op.create_table(
        "streams",
        sa.Column("store_id", sa.Text, primary_key=True),
        sa.Column("gateway_id", sa.Text, primary_key=True),
        sa.Column("contiguous_through", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("high_seq", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("received", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("duplicates", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("gap_since", sa.Text),
        sa.Column("last_event_at", sa.Text),
        if_not_exists=True,
    )
    op.create_table(
        "refunds",
        sa.Column("return_id", sa.Text, primary_key=True),
        sa.Column("event_id", sa.Text, nullable=False),
        sa.Column("store_id", sa.Text, nullable=False),
        sa.Column("gateway_id", sa.Text, nullable=False),
        sa.Column("currency", sa.Text, nullable=False),
        sa.Column("total", sa.Text, nullable=False),
        sa.Column("request", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("processor_ref", sa.Text),
        sa.Column("erp_ref", sa.Text),
        sa.Column("reason", sa.Text),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("received_at", sa.Text, nullable=False),
        sa.Column("decided_at", sa.Text),
        sa.CheckConstraint("status IN ('received', 'settled', 'declined')", name="refunds_status"),
        if_not_exists=True,
    )
    op.create_index(
        "refunds_open",
        "refunds",
        ["status"],
        sqlite_where=OPEN,
        postgresql_where=OPEN,
        if_not_exists=True,
    )
    op.create_table(
        "orders",
        sa.Column("sale_id", sa.Text, primary_key=True),
        sa.Column("sale", sa.Text, nullable=False),
        sa.Column("loaded_at", sa.Text, nullable=False),
        if_not_exists=True,
    )
    op.create_table(
        "gateways",
        sa.Column("store_id", sa.Text, primary_key=True),
        sa.Column("gateway_id", sa.Text, primary_key=True),
        sa.Column("state", sa.Text),
        sa.Column("bd_seq", sa.BigInteger),
        sa.Column("version", sa.Text),
        sa.Column("state_at", sa.Text),
        sa.Column("health", sa.Text),
        sa.Column("health_at", sa.Text),
        if_not_exists=True,
    )
    op.create_table(
        "alerts",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("store_id", sa.Text, nullable=False),
        sa.Column("gateway_id", sa.Text, nullable=False),
        sa.Column("alert", sa.Text, nullable=False),
        sa.Column("subject", sa.Text, nullable=False),
        sa.Column("severity", sa.Text, nullable=False),
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("detail", sa.Text, nullable=False),
        sa.Column("at", sa.Text, nullable=False),
        if_not_exists=True,
    )


def downgrade() -> None:
    for table in ("alerts", "gateways", "orders", "refunds", "streams", "events"):
        op.drop_table(table)
