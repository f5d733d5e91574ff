"""Volume doubling time and its uncertainty from the volume measurement error and the interval.

``VDT = dt * ln 2 / ln(V2 / V1)`` (Schwartz 1961; the form used by NELSON and the BTS guideline), ``dt``
the days between the studies, ``V1`` the prior and ``V2`` the current volume.

Volume error model (why a log-normal, and the worked example).  A segmented volume is off by a factor
rather than by an amount: a boundary shifted by a fraction of a voxel changes a 5 mm nodule's volume by a
larger share than a 20 mm one's, but for the sizes a screening CAD measures the spread of
``ln(V_measured / V_true)`` is close to one number (``VOLUME_ERROR`` below).  Each of the two volumes
carries it independently, so ``ln(V2 / V1)`` has SD ``sqrt(2) * VOLUME_ERROR``; its 95 % interval
``r +- 1.96 sqrt(2) s`` maps through ``dt ln 2 / r`` to the VDT interval (the map is monotone for r > 0;
an interval that reaches r <= 0 is unbounded above: "no growth" cannot be excluded).

Worked example, ``s = 0.10``: V1 = 500 mm^3, V2 = 1000 mm^3, dt = 365 days.  r = ln 2 = 0.693, SD(r) =
0.141, interval 0.693 +- 0.277 = [0.416, 0.970]; VDT = 365 days, interval [365 * 0.693 / 0.970,
365 * 0.693 / 0.416] = [261, 608] days.  The same volumes 30 days apart: VDT 30 days, [21, 50]: the
relative interval depends only on the volume ratio, the interval scales with dt.  A 10 % increase
(r = 0.095 < 0.277) gives VDT 2655 days with an unbounded interval.  With the calibrated ``s = 0.17``
(``VOLUME_ERROR``): SD(r) = 0.240, interval 0.693 +- 0.471 = [0.222, 1.164], VDT 365 [217, 1140] days
(30 days apart: [18, 94]); the interval is bounded above only when V2 / V1 > exp(0.471) = 1.60.

``VOLUME_ERROR`` is the detector's volume repeatability measured on synthetic follow-up pairs (the same
nodule, re-rendered under a new pose, inspiration and noise, with the exact volume ratio known): the SD
of ``ln(V2/V1)_measured - ln(V2/V1)_true`` over matched nodules, divided by sqrt(2).  Measured with
``scripts/compare_eval.py --inputs detect`` on calibration cohorts of seeds 2031 and 2033 (10 patients
each; not the held-out seed 2027 of docs/compare.md): 0.167 (n = 15 pairs) and 0.179 (n = 16), pooled
0.172 (n = 31; chi-square 95 % CI 0.137-0.229), set to 0.17.  Size dependence was checked and not found:
pooled < 8 mm 0.164 (n = 17), >= 8 mm 0.162 (n = 14); an ``a + b / d`` fit is not better than the
constant (likelihood ratio 0.9, 1 df), and the two seeds disagree on which band varies more (2031: 0.197
vs 0.111; 2033: 0.138 vs 0.206), so one constant is kept.  The systematic part of the error (the same
detector overestimating both) cancels in the ratio and is not in it.
"""

from __future__ import annotations

import math

from lungcad.errors import InputError
from lungcad.longitudinal.contract import DoublingTime

# relative SD of one volume measurement (ln units), calibrated on seeds 2031 + 2033; see the module docstring
VOLUME_ERROR = 0.17
Z95 = 1.959964  # two-sided 95 % normal quantile


def sphere_volume_mm3(diameter_mm: float) -> float:
    return math.pi / 6.0 * float(diameter_mm) ** 3


def doubling_time(
    prior_volume_mm3: float,
    current_volume_mm3: float,
    interval_days: float,
    volume_error: float = VOLUME_ERROR,
) -> DoublingTime:
    """VDT (days) of a nodule from its two volumes, with the 95 % interval of the module's error model.

    Raises:
        InputError: a non-positive volume, interval or error.
    """
    if not (prior_volume_mm3 > 0 and current_volume_mm3 > 0):
        raise InputError(f"volumes must be > 0 mm^3, got {prior_volume_mm3} and {current_volume_mm3}")
    if not interval_days > 0:
        raise InputError(f"a doubling time needs a positive interval, got {interval_days} days")
    if not volume_error > 0:
        raise InputError(f"volume_error must be > 0, got {volume_error}")
    r = math.log(current_volume_mm3 / prior_volume_mm3)
    sd = math.sqrt(2.0) * volume_error
    lo_r, hi_r = r - Z95 * sd, r + Z95 * sd

    def vdt(x: float) -> float:
        return round(interval_days * math.log(2.0) / x, 1)

    return DoublingTime(
        days=vdt(r) if r > 0 else None,
        low_days=vdt(hi_r) if hi_r > 0 else None,
        high_days=vdt(lo_r) if lo_r > 0 else None,
        log_ratio=round(r, 6),
        log_ratio_sd=round(sd, 6),
    )
