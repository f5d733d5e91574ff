"""The service's database: SQLAlchemy 2 models (``models``), engine and sessions (``session``), Alembic
migrations (``migrations/``, applied by ``migrate.upgrade``)."""
