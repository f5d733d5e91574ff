"""Checks shared by the sections of ``lungcad.config`` (ranges, mixes, sliding-window sizes).

They raise ``ValueError``: pydantic turns it into a validation error and ``load_config`` into a
``ConfigError`` that names the key.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict


class _Section(BaseModel):
    """Base of every configuration section: unknown keys refused, assignments validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False)


# Sliding-window sides (voxels at the 1 mm working grid).  Why these bounds:
# * >= 32: the window must hold the largest nodule the detector reports (30 mm) with context around it;
#   at 32 the bottleneck of the default network (stride 16) is 2 x 2 x 2.  A 7^3 window runs (the model
#   pads it to 16^3) but every window is mostly padding and border, so the heatmap is noise: on the bundled
#   slab [7, 7, 7] reported 45 "nodules".
# * <= 256: memory grows with the cube of the side.  One bf16 forward of the default network needs about
#   0.05 GB above the model at 96^3 and 0.6 GB at 256^3 (measured), so 512^3 would take ~5 GB and 2000^3
#   would take terabytes (the allocation traceback of defect 8), while a 1 mm lung crop is itself at most
#   ~350 voxels per side, so a bigger window rarely saves a window.
WINDOW_MIN = 32
WINDOW_MAX = 256


def check_range(name: str, value: tuple[float, float], low: float, high: float) -> None:
    """``value`` must be an ordered ``(low, high)`` pair inside ``[low, high]``."""
    a, b = value
    if not (low <= a <= b <= high):
        raise ValueError(f"synth.{name} must be (low, high) with {low} <= low <= high <= {high}, got {value}")


def check_mix(name: str, mix: dict[str, float], allowed: tuple[str, ...]) -> None:
    """Relative weights with known keys, none negative, at least one positive."""
    unknown = sorted(set(mix) - set(allowed))
    if unknown:
        raise ValueError(f"synth.{name} has unknown keys {unknown}; allowed: {allowed}")
    negative = {k: v for k, v in mix.items() if not v >= 0}
    if negative:
        raise ValueError(f"synth.{name} weights must be >= 0, got {negative}")
    if not sum(mix.values()) > 0:
        raise ValueError(f"synth.{name} needs at least one positive weight, got {mix}")


def window_rule(key: str, stride: int | str = 16) -> str:
    """The expected format of a sliding-window size, for error messages."""
    return (
        f"{key} must be three integers like [96, 96, 96] (z, y, x voxels at 1 mm), each a multiple of "
        f"{stride} (the network's total stride) from {WINDOW_MIN} to {WINDOW_MAX}"
    )


def parse_window(key: str, value: Any) -> tuple[int, int, int]:
    """Accept a list/tuple of three whole numbers (YAML gives lists) and range-check each side.

    Example: ``7`` or ``[96, 96]`` or ``[96.5, 96, 96]`` -> ``ValueError`` with the expected format;
    ``[96, 96, 96]`` -> ``(96, 96, 96)``.  The stride is checked later, against the model section.
    """
    ok = isinstance(value, list | tuple) and len(value) == 3
    ok = ok and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    if not ok or not all(WINDOW_MIN <= v <= WINDOW_MAX for v in value):
        raise ValueError(f"{window_rule(key)}; got {value!r}")
    return (int(value[0]), int(value[1]), int(value[2]))


def check_window_stride(key: str, value: tuple[int, int, int], stride: int) -> None:
    """Each side a multiple of the network's total stride (``ModelConfig.total_stride``).

    The network pads other sizes up to the next multiple (48 -> 48, 40 -> 48 at stride 16), spending
    compute on voxels no window result uses.
    """
    if any(v % stride for v in value):
        raise ValueError(f"{window_rule(key, stride)}; got {list(value)}")
