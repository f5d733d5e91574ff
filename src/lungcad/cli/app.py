"""Build the ``lungcad`` typer app: the global options and every command module, registered explicitly."""

from __future__ import annotations

import typer

from lungcad.cli import (
    compare,
    crossval,
    detect,
    evaluate,
    groundtruth,
    intake,
    report,
    service,
    synth,
    train,
    train_fpr,
)
from lungcad.cli.common import global_options

# The order of ``lungcad --help``: intake first, then ground truth, cohorts, training, detection, evaluation.
COMMAND_MODULES = (
    intake,
    groundtruth,
    synth,
    train,
    train_fpr,
    crossval,
    detect,
    report,
    compare,
    evaluate,
    service,
)


def build_app() -> typer.Typer:
    """A new app with all commands; each call returns an independent one (nothing is shared between them)."""
    app = typer.Typer(
        name="lungcad",
        help="Lung-nodule CAD for chest CT: intake, ground truth, synthetic cohorts, detection, evaluation.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
    )
    app.callback()(global_options)
    for module in COMMAND_MODULES:
        module.register(app)
    return app
