"""The data module for the synthetic dataset: KineticsDataModule without the horizontal flip.
The flip is a label-preserving augmentation for Kinetics, but not here: it turns moving_left
into moving_right and clockwise into anticlockwise rotation.
"""
from __future__ import annotations

from typing import Any

from videoattn.data import KineticsDataModule
from videoattn.data.clip import ClipSettings

__all__ = ["SyntheticDataModule"]


class SyntheticDataModule(KineticsDataModule):
    """``KineticsDataModule(root, train, val, test, ...)`` whose clips default to ``flip=False``;
    ``classes`` defaults to the dataset's classes.txt, so label indices follow the generator."""

    def __init__(
        self,
        root: str = ".",
        *args: Any,
        clip: ClipSettings = ClipSettings(flip=False),
        classes: list[str] | str | None = "classes.txt",
        **kwargs: Any,
    ) -> None:
        super().__init__(root, *args, clip=clip, classes=classes, **kwargs)
