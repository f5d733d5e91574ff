"""CLI commands of lungcad.annotations (registered on the shared app)."""

from lungcad.cli.common import app  # noqa: F401
