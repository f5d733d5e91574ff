"""The training session manager (``lungcad.service.training_manager``) as a thread of a worker, or alone:
``python -m lungcad.service.jobs.training --data-dir D`` (settings from ``LUNGCAD_*``; SIGTERM stops it,
the training processes keep running and the next manager re-attaches them)."""

from __future__ import annotations

import argparse
import sys
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lungcad.service.context import ServiceContext


def start_manager_thread(ctx: ServiceContext, stop: threading.Event, **kwargs: Any) -> threading.Thread:
    """Run a ``TrainingManager`` in a daemon thread of this process until ``stop`` is set."""
    from lungcad.service.training_manager import TrainingManager

    manager = TrainingManager(ctx, **kwargs)
    thread = threading.Thread(target=manager.run, args=(stop,), name="training-manager", daemon=True)
    thread.start()
    return thread


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m lungcad.service.jobs.training --data-dir D [--poll-s S]``."""
    import signal

    from lungcad.log import configure_logging
    from lungcad.service.context import open_context
    from lungcad.service.settings import load_settings
    from lungcad.service.training_manager import TrainingManager

    parser = argparse.ArgumentParser(prog="python -m lungcad.service.jobs.training")
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--poll-s", type=float, default=1.0)
    args = parser.parse_args(argv)
    configure_logging(json=True, level="INFO")
    ctx = open_context(load_settings(args.data_dir))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        TrainingManager(ctx, poll_s=args.poll_s).run(stop)
    finally:
        ctx.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
