"""Initial schema: keys, studies / series / instances, models, configuration versions, batches, analyses.

Revision 0001 (the first), written 2026-12-02.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("key_hash", sa.String(length=255), nullable=False),
        sa.Column("role", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_api_keys_prefix"), ["prefix"], unique=True)

    op.create_table(
        "batches",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "configs",
        sa.Column("hash", sa.String(length=32), nullable=False),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("hash"),
    )
    op.create_table(
        "models",
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("model_id", sa.String(length=200), nullable=False),
        sa.Column("model_version", sa.String(length=64), nullable=False),
        sa.Column("bundle_config_hash", sa.String(length=32), nullable=False),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("card", sa.JSON(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("filename", sa.String(length=255), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("sha256"),
    )
    with op.batch_alter_table("models", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_models_active"), ["active"], unique=False)

    op.create_table(
        "studies",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("study_uid", sa.String(length=64), nullable=False),
        sa.Column("patient_id", sa.String(length=64), nullable=True),
        sa.Column("patient_name", sa.String(length=200), nullable=True),
        sa.Column("patient_birth_date", sa.String(length=8), nullable=True),
        sa.Column("accession_number", sa.String(length=64), nullable=True),
        sa.Column("patient_id_hash", sa.String(length=32), nullable=True),
        sa.Column("study_date", sa.Date(), nullable=True),
        sa.Column("description", sa.String(length=200), nullable=True),
        sa.Column("n_instances", sa.Integer(), nullable=False),
        sa.Column("total_bytes", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("study_uid"),
    )
    with op.batch_alter_table("studies", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_studies_created_at"), ["created_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_studies_patient_id_hash"), ["patient_id_hash"], unique=False)
        batch_op.create_index(batch_op.f("ix_studies_study_date"), ["study_date"], unique=False)

    op.create_table(
        "analyses",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("study_id", sa.String(length=32), nullable=False),
        sa.Column("series_uid", sa.String(length=64), nullable=False),
        sa.Column("model_sha256", sa.String(length=64), nullable=False),
        sa.Column("config_hash", sa.String(length=32), nullable=False),
        sa.Column("report", sa.Boolean(), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "queued",
                "running",
                "done",
                "failed",
                "cancelled",
                name="analysisstatus",
                native_enum=False,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("progress", sa.Float(), nullable=False),
        sa.Column("stage", sa.String(length=32), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("claim", sa.String(length=32), nullable=True),
        sa.Column("worker", sa.String(length=200), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("batch_id", sa.String(length=32), nullable=True),
        sa.Column("result_dir", sa.String(length=64), nullable=True),
        sa.Column("cached", sa.Boolean(), nullable=False),
        sa.Column("scan_status", sa.String(length=16), nullable=True),
        sa.Column("lung_rads", sa.String(length=4), nullable=True),
        sa.Column("priority_rank", sa.Integer(), nullable=False),
        sa.Column("triage_probability", sa.Float(), nullable=False),
        sa.Column("n_findings", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["batch_id"], ["batches.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(
            ["config_hash"],
            ["configs.hash"],
        ),
        sa.ForeignKeyConstraint(
            ["model_sha256"],
            ["models.sha256"],
        ),
        sa.ForeignKeyConstraint(["study_id"], ["studies.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("analyses", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_analyses_batch_id"), ["batch_id"], unique=False)
        batch_op.create_index(
            "ix_analyses_cache",
            ["series_uid", "model_sha256", "config_hash", "report", "status"],
            unique=False,
        )
        batch_op.create_index(batch_op.f("ix_analyses_created_at"), ["created_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_analyses_status"), ["status"], unique=False)
        batch_op.create_index(batch_op.f("ix_analyses_study_id"), ["study_id"], unique=False)
        batch_op.create_index(
            "ix_analyses_worklist", ["status", "priority_rank", "triage_probability"], unique=False
        )

    op.create_table(
        "series",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("study_id", sa.String(length=32), nullable=False),
        sa.Column("series_uid", sa.String(length=64), nullable=False),
        sa.Column("modality", sa.String(length=16), nullable=True),
        sa.Column("description", sa.String(length=200), nullable=True),
        sa.Column("n_instances", sa.Integer(), nullable=False),
        sa.Column("usable", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["study_id"], ["studies.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("series_uid"),
    )
    with op.batch_alter_table("series", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_series_study_id"), ["study_id"], unique=False)

    op.create_table(
        "instances",
        sa.Column("sop_uid", sa.String(length=64), nullable=False),
        sa.Column("series_id", sa.String(length=32), nullable=False),
        sa.Column("sop_class_uid", sa.String(length=64), nullable=True),
        sa.Column("blob", sa.String(length=64), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["series_id"], ["series.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("sop_uid"),
    )
    with op.batch_alter_table("instances", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_instances_blob"), ["blob"], unique=False)
        batch_op.create_index(batch_op.f("ix_instances_series_id"), ["series_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("instances", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_instances_series_id"))
        batch_op.drop_index(batch_op.f("ix_instances_blob"))

    op.drop_table("instances")
    with op.batch_alter_table("series", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_series_study_id"))

    op.drop_table("series")
    with op.batch_alter_table("analyses", schema=None) as batch_op:
        batch_op.drop_index("ix_analyses_worklist")
        batch_op.drop_index(batch_op.f("ix_analyses_study_id"))
        batch_op.drop_index(batch_op.f("ix_analyses_status"))
        batch_op.drop_index(batch_op.f("ix_analyses_created_at"))
        batch_op.drop_index("ix_analyses_cache")
        batch_op.drop_index(batch_op.f("ix_analyses_batch_id"))

    op.drop_table("analyses")
    with op.batch_alter_table("studies", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_studies_study_date"))
        batch_op.drop_index(batch_op.f("ix_studies_patient_id_hash"))
        batch_op.drop_index(batch_op.f("ix_studies_created_at"))

    op.drop_table("studies")
    with op.batch_alter_table("models", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_models_active"))

    op.drop_table("models")
    op.drop_table("configs")
    op.drop_table("batches")
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_api_keys_prefix"))

    op.drop_table("api_keys")
