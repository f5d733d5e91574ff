"""structlog set-up: readable console lines for people, JSON lines for machines, never patient fields.

Every pipeline stage logs one ``stage`` event with its name and duration (``log_stage`` / ``timed_stage``),
e.g. with ``lungcad --log-json --log-level INFO detect scan/``::

    {"stage": "network", "seconds": 2.84, "event": "stage", "level": "info", "logger": "lungcad", ...}

Patient identifiers never reach a log: the ``scrub_phi`` processor replaces the value of any key that could
carry one (``PatientName``, ``patient_id``, ``PatientBirthDate``, ... in any spelling, at any depth of a
nested dict or list) and whole DICOM datasets by ``"<redacted>"``.  Log calls pass stage names, counts,
shapes and timings, never metadata objects; the scrubber is the safety net for a mistake.
"""

from __future__ import annotations

import functools
import logging
import re
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import structlog

from lungcad.errors import ConfigError

LEVELS: tuple[str, ...] = ("DEBUG", "INFO", "WARNING", "ERROR")
REDACTED = "<redacted>"

# Keys are compared after lower-casing and dropping everything but letters and digits, so PatientName,
# patient_name and patient-name are one key.  Any key mentioning the patient or a birth date is PHI
# (PatientID, OtherPatientIDs, PatientBirthTime, PatientAddress, ...); the others are the DICOM PS3.15
# basic-profile attributes a CT header carries that name a person, a place or a visit.
_PHI_WORDS = ("patient", "birth")
_PHI_KEYS = frozenset(
    {
        "accessionnumber",
        "referringphysicianname",
        "performingphysicianname",
        "physiciansofrecord",
        "operatorsname",
        "institutionname",
        "institutionaddress",
        "institutionaldepartmentname",
        "studyid",
        "requestingphysician",
    }
)
_NON_ALNUM = re.compile(r"[^a-z0-9]")


@functools.lru_cache(maxsize=4096)  # a log event's keys repeat: the normalising regex once per key
def is_phi_key(key: object) -> bool:
    """``PatientName`` / ``patient_name`` / ``OtherPatientIDs`` / ``AccessionNumber`` -> True."""
    norm = _NON_ALNUM.sub("", str(key).lower())
    return norm in _PHI_KEYS or any(word in norm for word in _PHI_WORDS)


_SCALARS = frozenset({str, int, float, bool, type(None)})


def _scrub_value(value: Any) -> Any:
    if type(value) in _SCALARS:  # most values: skip the (slow) abstract-class checks below
        return value
    if type(value).__name__ in {"Dataset", "FileDataset", "DataElement"}:  # pydicom objects: whole headers
        return REDACTED
    if isinstance(value, Mapping):
        return {k: REDACTED if is_phi_key(k) else _scrub_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub_value(v) for v in value]
    return value


def scrub_phi(_: Any, __: str, event: dict[str, Any]) -> dict[str, Any]:
    """structlog processor: PHI-keyed values (at any depth) and DICOM datasets become ``"<redacted>"``."""
    for key in list(event):
        if key == "event":
            continue
        event[key] = REDACTED if is_phi_key(key) else _scrub_value(event[key])
    return event


def parse_level(level: str) -> int:
    """``"info"`` -> ``logging.INFO``.

    Raises:
        ConfigError: a level not in ``LEVELS`` (``--log-level LOUD``).
    """
    name = str(level).upper()
    if name not in LEVELS:
        raise ConfigError(
            f"unknown log level {level!r}",
            fix=f"pass --log-level with one of {', '.join(LEVELS)}",
        )
    return int(getattr(logging, name))


def configure_logging(*, json: bool = False, level: str = "WARNING") -> None:
    """Configure structlog for this process (called by the CLI and the service, never at import).

    Lines go to ``sys.stderr`` as it is at each write (so stdout stays clean for ``--json`` output).

    Raises:
        ConfigError: an unknown ``level``.
    """
    threshold = parse_level(level)
    renderer: Any = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            # request_id (and any other context the service binds) on every line of a request
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            scrub_phi,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(threshold),
        logger_factory=_StderrLoggerFactory(),
        cache_logger_on_first_use=False,
    )


class _StderrLoggerFactory:
    """A PrintLogger on the *current* ``sys.stderr`` (pytest's capture and redirections swap it)."""

    def __call__(self, *args: Any) -> structlog.PrintLogger:
        return structlog.PrintLogger(file=sys.stderr)


def get_logger(name: str = "lungcad") -> Any:
    """A structlog logger bound to ``logger=name`` (``lungcad.infer``, ``lungcad.synth``, ...).

    Silent until ``configure_logging`` ran: used as a library (tests, scripts, notebooks), lungcad prints
    nothing, where structlog's own default would print every event to stdout and spoil JSON output there.
    """
    if not structlog.is_configured():
        return structlog.wrap_logger(
            structlog.ReturnLogger(),
            processors=[],
            wrapper_class=structlog.make_filtering_bound_logger(logging.CRITICAL),
        )
    return structlog.get_logger(name).bind(logger=name)


def log_stage(stage: str, seconds: float, logger: str = "lungcad", **fields: Any) -> None:
    """One INFO ``stage`` event: the stage's name, its duration in seconds and a few counts or shapes."""
    get_logger(logger).info("stage", stage=stage, seconds=round(float(seconds), 4), **fields)


@contextmanager
def timed_stage(stage: str, logger: str = "lungcad", **fields: Any) -> Iterator[dict[str, Any]]:
    """Time the block and log it as ``stage``; the yielded dict adds fields known only at the end."""
    extra: dict[str, Any] = {}
    start = time.perf_counter()
    yield extra
    log_stage(stage, time.perf_counter() - start, logger, **fields, **extra)
