"""Shared hypothesis settings of the property tests: reproducible in CI, fast, no example database."""

from __future__ import annotations

import os

from hypothesis import settings


def property_settings(max_examples: int) -> settings:
    """``max_examples`` derandomized examples (the same every run, as the rest of the suite is seeded).

    ``LUNGCAD_PROPERTY_RANDOM=1`` draws fresh random examples instead, to hunt for new counterexamples.
    """
    return settings(
        max_examples=max_examples,
        deadline=None,
        derandomize=os.environ.get("LUNGCAD_PROPERTY_RANDOM") != "1",
        database=None,
    )
