"""Result delivery (issue 16): ``result_deliveries``, the log of the DICOM SEG / SR / Encapsulated PDF of each
done analysis pushed to each configured destination (C-STORE or STOW-RS): object kind, file, SOP instance
UID, status pending | delivered | failed | skipped, attempts (of at most ``max_attempts``), next attempt, the
sender's claim token, the last DICOM / HTTP status and error, timestamps.

Revision 0006 (after 0005), written 2026-12-03.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_STATUS = sa.Enum(
    "pending", "delivered", "failed", "skipped", name="resultdeliverystatus", native_enum=False, length=16
)


def upgrade() -> None:
    op.create_table(
        "result_deliveries",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("analysis_id", sa.String(length=32), nullable=False),
        sa.Column("destination", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("object_kind", sa.String(length=8), nullable=False),
        sa.Column("file", sa.String(length=200), nullable=True),
        sa.Column("sop_instance_uid", sa.String(length=64), nullable=True),
        sa.Column("status", _STATUS, nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("claim", sa.String(length=32), nullable=True),
        sa.Column("last_status", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["analysis_id"], ["analyses.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("result_deliveries", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_result_deliveries_analysis_id"), ["analysis_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_result_deliveries_created_at"), ["created_at"], unique=False)
        batch_op.create_index("ix_result_deliveries_due", ["status", "next_attempt_at"], unique=False)
        batch_op.create_index(
            "ix_result_deliveries_object", ["analysis_id", "destination", "object_kind"], unique=True
        )


def downgrade() -> None:
    with op.batch_alter_table("result_deliveries", schema=None) as batch_op:
        batch_op.drop_index("ix_result_deliveries_object")
        batch_op.drop_index("ix_result_deliveries_due")
        batch_op.drop_index(batch_op.f("ix_result_deliveries_created_at"))
        batch_op.drop_index(batch_op.f("ix_result_deliveries_analysis_id"))

    op.drop_table("result_deliveries")
