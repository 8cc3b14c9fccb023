"""Tests for videoattn.aggregate: multi-view aggregation as a pure function."""
from __future__ import annotations

import pytest
import torch

from videoattn.aggregate import aggregate_views


def test_mean_of_softmax_matches_hand_computation() -> None:
    logits = torch.tensor([[[2.0, 0.0, 0.0], [0.0, 0.0, 3.0]]])  # 1 video, 2 views, 3 classes
    p0 = torch.softmax(logits[0, 0], 0)
    p1 = torch.softmax(logits[0, 1], 0)
    out = aggregate_views(logits, "mean")
    torch.testing.assert_close(out[0], (p0 + p1) / 2)
    torch.testing.assert_close(out.sum(-1), torch.ones(1))


def test_max_differs_from_mean_on_a_confident_view() -> None:
    # view 0 is fairly sure of class 0, views 1-3 lean mildly to class 1
    logits = torch.tensor([[[1.5, 0.0], [0.0, 1.0], [0.0, 1.0], [0.0, 1.0]]])
    assert aggregate_views(logits, "max").argmax(-1).item() == 0
    assert aggregate_views(logits, "mean").argmax(-1).item() == 1
    torch.testing.assert_close(aggregate_views(logits, "max")[0], logits[0].softmax(-1).amax(0))


def test_mean_logits_and_single_view() -> None:
    logits = torch.randn(4, 1, 7)
    for method in ("mean", "max", "mean_logits"):
        torch.testing.assert_close(aggregate_views(logits, method), logits[:, 0].softmax(-1))
    logits = torch.randn(3, 5, 7)
    torch.testing.assert_close(aggregate_views(logits, "mean_logits"), logits.mean(1).softmax(-1))


def test_views_are_permutation_invariant_and_videos_independent() -> None:
    logits = torch.randn(3, 6, 5)
    perm = torch.randperm(6)
    for method in ("mean", "max", "mean_logits"):
        torch.testing.assert_close(aggregate_views(logits[:, perm], method), aggregate_views(logits, method))
        torch.testing.assert_close(aggregate_views(logits[1:2], method), aggregate_views(logits, method)[1:2])


@pytest.mark.parametrize("shape", [(4, 5), (2, 3, 4, 5)])
def test_bad_shape_names_the_expected_layout(shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match=r"\[B, V, K\]"):
        aggregate_views(torch.zeros(shape))


def test_unknown_method_lists_valid_ones() -> None:
    with pytest.raises(ValueError, match="mean, max, mean_logits"):
        aggregate_views(torch.zeros(1, 2, 3), "median")  # type: ignore[arg-type]
