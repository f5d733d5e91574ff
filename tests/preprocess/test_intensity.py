from __future__ import annotations

import numpy as np
import pytest

from lungcad.errors import InputError
from lungcad.preprocess.intensity import normalise_hu


def test_window_hand_computed() -> None:
    hu = np.array([-2000.0, -1000.0, -300.0, 400.0, 3000.0], dtype=np.float32)
    np.testing.assert_allclose(normalise_hu(hu), [0.0, 0.0, 0.5, 1.0, 1.0], rtol=0, atol=1e-7)


def test_custom_window() -> None:
    np.testing.assert_allclose(
        normalise_hu(np.array([-50.0, 0.0, 50.0]), -100, 100), [0.25, 0.5, 0.75], rtol=0
    )


def test_equalisation_is_monotonic_and_in_range() -> None:
    hu = np.random.default_rng(1).normal(-850, 60, 5000).astype(np.float32)
    out = normalise_hu(hu, equalise=True)
    assert out.min() >= 0.0 and out.max() <= 1.0
    order = np.argsort(hu)
    assert np.all(np.diff(out[order]) >= 0)
    # lung-only values occupy ~0.1 of the plain window but are spread over most of [0, 1] once equalised
    assert np.ptp(out) > 0.9 > np.ptp(normalise_hu(hu)) * 3


def test_bad_window() -> None:
    with pytest.raises(InputError, match="hu_min must be < hu_max, got 10 >= 10"):
        normalise_hu(np.zeros(3), 10, 10)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int16])
def test_in_place_window_is_bitwise_the_plain_formula(dtype: type) -> None:
    # issue 18: normalise_hu scales one output array in place; the values must be exactly those of the
    # plain expression (the golden outputs depend on them bit for bit)
    hu = np.random.default_rng(2).uniform(-1500, 1500, (7, 9, 11)).astype(dtype)
    expected = (np.clip(hu, -1000.0, 400.0).astype(np.float32) - np.float32(-1000.0)) * np.float32(1 / 1400)
    out = normalise_hu(hu)
    assert out.dtype == np.float32 and out.shape == hu.shape
    np.testing.assert_array_equal(out, expected)
    assert not np.shares_memory(out, hu)
