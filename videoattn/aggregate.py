"""Multi-view aggregation: the per-video score from the logits of its V test views
(N temporal clips x M spatial crops), as in PySlowFast's and pytorchvideo's evaluation.
"""
from __future__ import annotations

from typing import Literal

import torch

__all__ = ["AGGREGATIONS", "aggregate_views"]

AGGREGATIONS = ("mean", "max", "mean_logits")


def aggregate_views(logits: torch.Tensor, method: Literal["mean", "max", "mean_logits"] = "mean") -> torch.Tensor:
    """Combine the ``[B, V, K]`` logits of V views per video into ``[B, K]`` video scores.

    ``"mean"`` averages the softmax probabilities of the views (the default of
    PySlowFast's ``TEST.ENSEMBLE_METHOD: sum``, up to the constant 1/V), ``"max"`` takes the
    class-wise maximum of the probabilities (PySlowFast's ``max``; rows no longer sum to 1),
    ``"mean_logits"`` averages the logits and applies the softmax once.
    """
    if logits.ndim != 3:
        raise ValueError(f"logits must be [B, V, K] (videos, views, classes), got shape {tuple(logits.shape)}")
    if logits.shape[1] == 0:
        raise ValueError("logits has no views (V == 0)")
    logits = logits.float()
    if method == "mean":
        return logits.softmax(dim=-1).mean(dim=1)  # [B, V, K] -> [B, K]
    if method == "max":
        return logits.softmax(dim=-1).amax(dim=1)  # [B, V, K] -> [B, K]
    if method == "mean_logits":
        return logits.mean(dim=1).softmax(dim=-1)  # [B, V, K] -> [B, K]
    raise ValueError(f"unknown aggregation method {method!r}; valid: {', '.join(AGGREGATIONS)}")
