"""Brock risk options (issue 17): ``analyses.risk_options``, the request's Brock malignancy-risk inputs the
scan cannot give (family history, age / sex overrides, ...) as canonical JSON; NULL when none were given
(every analysis before this revision).  Part of the result-cache key.

Revision 0007 (after 0006), written 2026-12-03.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("analyses", schema=None) as batch_op:
        batch_op.add_column(sa.Column("risk_options", sa.String(length=200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("analyses", schema=None) as batch_op:
        batch_op.drop_column("risk_options")
