"""3-D augmentation: one transform per module."""

from lungcad.data.augment.intensity import RandomIntensity
from lungcad.data.augment.spatial import RandomSpatial, SpatialParams

__all__ = ["RandomIntensity", "RandomSpatial", "SpatialParams"]
