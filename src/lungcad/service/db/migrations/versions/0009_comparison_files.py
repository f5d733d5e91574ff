"""Comparison reports (issue 17): ``comparisons.result_dir``, the folder under ``D/results`` of the current
study's report rendered with the comparison (``comparison-<id>``: report HTML / PDF, figures, DICOM SEG / SR
/ Encapsulated PDF); NULL when none was rendered (every comparison before this revision).

Revision 0009 (after 0008), written 2026-12-03.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("comparisons", schema=None) as batch_op:
        batch_op.add_column(sa.Column("result_dir", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("comparisons", schema=None) as batch_op:
        batch_op.drop_column("result_dir")
