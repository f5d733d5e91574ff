"""CLI: lungcad evaluate (registered on the shared app)."""

from lungcad.cli.common import app  # noqa: F401
