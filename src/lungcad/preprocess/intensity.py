"""HU window to [0, 1] and optional histogram equalisation."""

from __future__ import annotations

import numpy as np

from lungcad.errors import InputError


def normalise_hu(
    hu: np.ndarray, hu_min: float = -1000.0, hu_max: float = 400.0, *, equalise: bool = False
) -> np.ndarray:
    """Clip HU to ``[hu_min, hu_max]`` and scale linearly to ``[0, 1]`` (float32).

    Example: with the default window, -1000 HU -> 0.0, -300 HU -> 0.5, 400 HU -> 1.0.

    With ``equalise=True`` the windowed values are then mapped through their own cumulative histogram
    (256 bins), which spreads the lung parenchyma range; still within ``[0, 1]``.
    """
    if hu_min >= hu_max:
        raise InputError(f"hu_min must be < hu_max, got {hu_min} >= {hu_max}")
    # One output array, scaled in place: the same float32 operations as ``(clip - lo) * k`` without its
    # two temporaries -- freshly allocated memory costs more than the arithmetic (issue 18: 16 Mvox
    # took 0.3-0.8 s with three 66 MB arrays, 15 ms once the pages are in use).
    out = np.empty(np.shape(hu), dtype=np.float32)
    np.clip(hu, hu_min, hu_max, out=out, casting="unsafe")
    out -= np.float32(hu_min)
    out *= np.float32(1.0 / (hu_max - hu_min))
    if equalise:
        hist, edges = np.histogram(out, bins=256, range=(0.0, 1.0))
        cdf = np.cumsum(hist).astype(np.float64)
        cdf /= cdf[-1]
        out = np.interp(out, edges[1:], cdf).astype(np.float32)
    return out
