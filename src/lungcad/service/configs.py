"""Configuration versions: every analysis records the hash of the configuration it ran under
(``lungcad.service.models_registry.record_config``); these read them back and compare two.

A diff lists every differing *leaf* of the two nested trees by its dotted path (``infer.overlap``); a list
is a leaf (compared whole: its order matters, as in ``infer.tta_flips``), and a key present on one side only
gives the whole value there and ``None`` on the other.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from lungcad.service.db.models import ConfigVersion
from lungcad.service.errors import ApiError

_MISSING = object()


@dataclass(frozen=True)
class Difference:
    path: str
    a: Any
    b: Any


def get_config(s: Session, config_hash: str) -> ConfigVersion:
    row = s.get(ConfigVersion, config_hash)
    if row is None:
        raise ApiError(
            404,
            "not_found",
            f"no configuration with hash {config_hash!r}",
            fix="use the config_hash of an analysis (GET /api/v1/analyses/{id})",
        )
    return row


def _walk(a: Any, b: Any, prefix: str) -> Iterator[Difference]:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b), key=str):
            path = f"{prefix}.{key}" if prefix else str(key)
            yield from _walk(a.get(key, _MISSING), b.get(key, _MISSING), path)
        return
    if isinstance(a, dict) and b is _MISSING:  # a section on one side only: list its leaves
        yield from _walk(a, {}, prefix) if a else iter([Difference(prefix, a, None)])
        return
    if isinstance(b, dict) and a is _MISSING:
        yield from _walk({}, b, prefix) if b else iter([Difference(prefix, None, b)])
        return
    # 1 and 1.0 are the same value; True and 1 are not (a flag is not a count)
    if a is _MISSING or b is _MISSING or a != b or isinstance(a, bool) != isinstance(b, bool):
        yield Difference(prefix, None if a is _MISSING else a, None if b is _MISSING else b)


def diff_trees(a: dict[str, Any], b: dict[str, Any]) -> list[Difference]:
    """The differing leaves of two nested dicts, sorted by path."""
    return list(_walk(a, b, ""))


def diff_configs(s: Session, a: str, b: str) -> list[Difference]:
    """The differences between two stored configuration versions (404 for an unknown hash)."""
    return diff_trees(get_config(s, a).config, get_config(s, b).config)
