"""CLI commands of lungcad.synth (registered on the shared app)."""

from lungcad.cli.common import app  # noqa: F401
