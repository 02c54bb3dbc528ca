"""Refund claims, so that of several instances only one calls the processor at a time.

`claimed_by`/`claimed_until` is a lease taken by a conditional UPDATE; `claims` counts the
processor calls made for the refund; `decided_by` names the instance whose outcome won.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("refunds", sa.Column("claimed_by", sa.Text))
    op.add_column("refunds", sa.Column("claimed_until", sa.BigInteger))
    op.add_column("refunds", sa.Column("claims", sa.Integer, nullable=False, server_default="0"))
    op.add_column("refunds", sa.Column("decided_by", sa.Text))


def downgrade() -> None:
    for column in ("decided_by", "claims", "claimed_until", "claimed_by"):
        op.drop_column("refunds", column)
