"""Reconciliation at HQ: what the ERP holds (`erp_documents`), the digests sent, and the
gateways' reports with their mismatches flattened for the fleet view.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "erp_documents",
        sa.Column("doc_id", sa.Text, primary_key=True),
        sa.Column("store_id", sa.Text, nullable=False),
        sa.Column("gateway_id", sa.Text),
        sa.Column("return_id", sa.Text),
        sa.Column("created_at", sa.Text, nullable=False),
        sa.Column("presence", sa.Text, nullable=False, server_default=sa.text("'posted'")),
        sa.Column("entry", sa.Text, nullable=False),
        sa.Column("profile", sa.Text),
        sa.Column("document", sa.Text),
        sa.Column("injected", sa.Text),
        sa.Column("recorded_at", sa.Text, nullable=False),
        sa.CheckConstraint("presence IN ('posted', 'dropped')", name="erp_documents_presence"),
    )
    op.create_index("erp_documents_by_store", "erp_documents", ["store_id", "created_at"])
    op.create_index("erp_documents_by_return", "erp_documents", ["return_id"])
    op.create_table(
        "recon_digests",
        sa.Column("digest_id", sa.Text, primary_key=True),
        sa.Column("store_id", sa.Text, nullable=False),
        sa.Column("gateway_id", sa.Text, nullable=False),
        sa.Column("period_from", sa.Text, nullable=False),
        sa.Column("period_to", sa.Text, nullable=False),
        sa.Column("generated_at", sa.Text, nullable=False),
        sa.Column("entries", sa.Integer, nullable=False),
        sa.Column("trigger", sa.Text, nullable=False),
        sa.Column("slot", sa.Text, unique=True),
        sa.Column("instance", sa.Text),
    )
    op.create_table(
        "recon_reports",
        sa.Column("report_id", sa.Text, primary_key=True),
        sa.Column("store_id", sa.Text, nullable=False),
        sa.Column("gateway_id", sa.Text, nullable=False),
        sa.Column("digest_id", sa.Text),
        sa.Column("period_from", sa.Text, nullable=False),
        sa.Column("period_to", sa.Text, nullable=False),
        sa.Column("generated_at", sa.Text, nullable=False),
        sa.Column("received_at", sa.Text, nullable=False),
        sa.Column("checked", sa.Integer, nullable=False),
        sa.Column("matched", sa.Integer, nullable=False),
        sa.Column("summary", sa.Text, nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("received_by", sa.Text),
    )
    op.create_index(
        "recon_reports_by_gateway", "recon_reports", ["store_id", "gateway_id", "generated_at"]
    )
    op.create_table(
        "recon_mismatches",
        sa.Column("store_id", sa.Text, primary_key=True),
        sa.Column("gateway_id", sa.Text, primary_key=True),
        sa.Column("mismatch_id", sa.Text, primary_key=True),
        sa.Column("report_id", sa.Text, nullable=False),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("class", sa.Text, nullable=False),
        sa.Column("pattern", sa.Text),
        sa.Column("currency", sa.Text, nullable=False),
        sa.Column("delta", sa.Text),
        sa.Column("at_risk", sa.Text, nullable=False),
        sa.Column("return_id", sa.Text),
        sa.Column("external_ref", sa.Text),
        sa.Column("period_from", sa.Text, nullable=False),
        sa.Column("period_to", sa.Text, nullable=False),
        sa.Column("detected_at", sa.Text, nullable=False),
        sa.Column("last_seen_at", sa.Text, nullable=False),
        sa.Column("state", sa.Text, nullable=False),
        sa.CheckConstraint("state IN ('open', 'resolved')", name="recon_mismatches_state"),
    )
    op.create_index("recon_mismatches_open", "recon_mismatches", ["state", "store_id"])


def downgrade() -> None:
    for table in ("recon_mismatches", "recon_reports", "recon_digests", "erp_documents"):
        op.drop_table(table)
