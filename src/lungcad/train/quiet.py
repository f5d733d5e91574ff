"""Keep third-party chatter a user cannot act on out of a training run's output, for its duration only.

What Lightning and MLflow print around ``Trainer.fit`` and what is done with it:

* Lightning's info lines ("GPU available: False, used: False", "TPU available ...", "💡 Tip: ... litlogger",
  "`weights_only` was not set", "`Trainer.fit` stopped: `max_epochs=2` reached."): the ``lightning.pytorch``
  and ``lightning.fabric`` loggers are raised to WARNING; the run's own summary says how it ended.
* MLflow's set-up banners ("Creating initial MLflow database tables...", "Experiment with name lungcad not
  found. Creating it."): the ``mlflow``, ``alembic`` and Lightning MLflow-logger loggers are raised too.
* Warnings about things lungcad chooses on purpose (few data-loader workers, the logging interval against
  the number of batches, checkpoint callback state of older runs, a torch pytree deprecation inside
  Lightning) or handles itself (a mid-epoch resume: the data module's ``state_dict`` restores the
  sampler position, which Lightning cannot see on the data loader): ignored by message. Every other
  warning still shows.

Scoped (a context manager, restored on exit), never set at import: other code in the same process keeps
its own logging and warning settings.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

QUIET_LOGGERS: dict[str, int] = {
    "lightning.pytorch": logging.WARNING,
    "lightning.fabric": logging.WARNING,
    "lightning.pytorch.loggers.mlflow": logging.ERROR,
    "mlflow": logging.WARNING,
    "alembic": logging.WARNING,
}

IGNORED_WARNINGS: tuple[str, ...] = (
    r".*does not have many workers",
    r".*is smaller than the logging interval",
    r".*`isinstance\(treespec, LeafSpec\)` is deprecated",
    r".*callbacks used to create the checkpoint need to be provided",
    r".*litlogger",
    r".*Consider setting `persistent_workers=True`",
    r".*your dataloader is not resumable",
)


@contextmanager
def quiet_third_party() -> Iterator[None]:
    """Raise the third-party loggers of ``QUIET_LOGGERS`` and ignore ``IGNORED_WARNINGS`` while inside."""
    previous = {name: logging.getLogger(name).level for name in QUIET_LOGGERS}
    with warnings.catch_warnings():
        for pattern in IGNORED_WARNINGS:
            warnings.filterwarnings("ignore", message=pattern)
        for name, level in QUIET_LOGGERS.items():
            logger = logging.getLogger(name)
            logger.setLevel(max(level, logger.getEffectiveLevel()))
        try:
            yield
        finally:
            for name, level in previous.items():
                logging.getLogger(name).setLevel(level)
