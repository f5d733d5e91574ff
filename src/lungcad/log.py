"""structlog set-up: readable console lines for people, JSON lines for machines.

Patient identifiers never reach a log: the ``_scrub`` processor drops keys that could carry them.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog

PHI_KEYS = frozenset(
    {
        "patient_name",
        "patient_id",
        "patient_age",
        "patient_sex",
        "patient_birth_date",
        "PatientName",
        "PatientID",
        "PatientAge",
        "PatientSex",
        "PatientBirthDate",
        "accession_number",
        "AccessionNumber",
    }
)


def _scrub(_: Any, __: str, event: dict[str, Any]) -> dict[str, Any]:
    for key in list(event):
        if key in PHI_KEYS:
            event[key] = "<redacted>"
    return event


def configure_logging(*, json: bool = False, level: str = "INFO") -> None:
    """Configure structlog once per process (called by the CLI and the service, never at import)."""
    renderer: Any = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _scrub,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(getattr(logging, level.upper(), logging.INFO)),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )


def get_logger(name: str = "lungcad") -> Any:
    return structlog.get_logger(name)
