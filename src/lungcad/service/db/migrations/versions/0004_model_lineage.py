"""Model registry: ``models.lineage`` (an exported model's run, data, config hash, metrics) and the
append-only ``model_activations`` history (``POST /models/rollback`` replays it).

The model active at upgrade time gets an ``initial`` history row, so a later activation can be rolled back
to it.

Revision 0004 (after 0003), written 2026-12-02.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "model_activations",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("by_key", sa.String(length=16), nullable=True),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.ForeignKeyConstraint(["sha256"], ["models.sha256"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("model_activations", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_model_activations_at"), ["at"], unique=False)

    with op.batch_alter_table("models", schema=None) as batch_op:
        batch_op.add_column(sa.Column("lineage", sa.JSON(), nullable=True))

    models = sa.table(
        "models",
        sa.column("sha256", sa.String),
        sa.column("created_at", sa.DateTime),
        sa.column("active", sa.Boolean),
    )
    activations = sa.table(
        "model_activations",
        sa.column("at", sa.DateTime),
        sa.column("sha256", sa.String),
        sa.column("by_key", sa.String),
        sa.column("kind", sa.String),
    )
    op.execute(
        activations.insert().from_select(
            ["at", "sha256", "by_key", "kind"],
            sa.select(models.c.created_at, models.c.sha256, sa.null(), sa.literal("initial")).where(
                models.c.active.is_(True)
            ),
        )
    )


def downgrade() -> None:
    with op.batch_alter_table("models", schema=None) as batch_op:
        batch_op.drop_column("lineage")

    with op.batch_alter_table("model_activations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_model_activations_at"))

    op.drop_table("model_activations")
