"""Adaptive discriminator augmentation (ADA): the augmentation pipeline and its random sources."""

from .pipe import PRESETS, TRANSFORMS, AugmentConfig, AugmentPipe, preset
from .random_source import RecordedSource, StatelessSource

__all__ = ["AugmentConfig", "AugmentPipe", "PRESETS", "TRANSFORMS", "preset", "RecordedSource", "StatelessSource"]
