"""Random intensity shift / contrast and Gaussian noise on a [0, 1]-windowed CT patch (MONAI transforms)."""

from __future__ import annotations

import numpy as np
import torch
from monai.transforms import Compose, RandGaussianNoise, RandScaleIntensity, RandShiftIntensity


class RandomIntensity:
    """MONAI intensity transforms with their RNG seeded from the caller's generator.

    Defaults mimic scanner variation: +-0.02 shift (~28 HU), +-10 % contrast, noise up to 0.015 std
    (~20 HU) on top of the scan's own noise.
    """

    def __init__(
        self, shift: float = 0.02, scale: float = 0.1, noise_std: float = 0.015, prob: float = 0.5
    ) -> None:
        self._compose = Compose(
            [
                RandShiftIntensity(offsets=shift, prob=prob),
                RandScaleIntensity(factors=scale, prob=prob),
                RandGaussianNoise(prob=prob, mean=0.0, std=noise_std),
            ]
        )

    def __call__(self, image: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        self._compose.set_random_state(seed=int(rng.integers(2**31 - 1)))
        out = self._compose(image)
        return torch.as_tensor(out, dtype=torch.float32).clamp_(0.0, 1.0)
