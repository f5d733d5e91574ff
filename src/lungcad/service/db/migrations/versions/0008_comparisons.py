"""Comparisons with a prior scan (issue 17): ``comparisons`` -- one row per ``POST /comparisons``, holding
the ``comparison.json`` document and the two analyses it compares (deleted with either of them).

Revision 0008 (after 0007), written 2026-12-03.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "comparisons",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("analysis_id", sa.String(length=32), nullable=False),
        sa.Column("prior_analysis_id", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=16), nullable=True),
        sa.Column("document", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["analysis_id"], ["analyses.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["prior_analysis_id"], ["analyses.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("comparisons", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_comparisons_analysis_id"), ["analysis_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_comparisons_created_at"), ["created_at"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_comparisons_prior_analysis_id"), ["prior_analysis_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("comparisons", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_comparisons_prior_analysis_id"))
        batch_op.drop_index(batch_op.f("ix_comparisons_created_at"))
        batch_op.drop_index(batch_op.f("ix_comparisons_analysis_id"))
    op.drop_table("comparisons")
