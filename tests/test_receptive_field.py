"""Receptive fields measured on the network (videoattn.models.receptive_field): a toy stack with a
known field, and the per-stage fields of i3d_tiny and of the relations task's probe i3d_probe,
as docs/relations.md states them.
"""
from __future__ import annotations

import pytest
import torch
from torch import nn

from videoattn.models import create_model
from videoattn.models.receptive_field import receptive_fields


class _Stage(nn.Module):
    def __init__(self, conv: nn.Module) -> None:
        super().__init__()
        self.conv = conv

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.conv(x))


def test_fields_of_a_toy_stack_match_the_arithmetic(monkeypatch: pytest.MonkeyPatch) -> None:
    """3x3 convs: field 3, then +2 (stride 1), a stride-2 3x3: +2, then +4 per 3x3 after it; a
    max-pool counts like its window. A temporal kernel of 3 in the first conv only: 3 frames."""
    import videoattn.models.receptive_field as rf

    stages = nn.Sequential(
        _Stage(nn.Conv3d(3, 4, (3, 3, 3), padding=1)),
        _Stage(nn.Conv3d(4, 4, (1, 3, 3), padding=(0, 1, 1))),
        nn.Sequential(nn.MaxPool3d((1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1)), _Stage(nn.Conv3d(4, 4, (1, 3, 3), padding=(0, 1, 1)))),
        _Stage(nn.Conv3d(4, 4, (1, 1, 1))),
    )
    monkeypatch.setattr(rf, "res_stage_paths", lambda model: ["0", "1", "2", "3"])
    fields = receptive_fields(stages, input_size=(9, 33, 33))
    assert fields == {"res2": (3, 3, 3), "res3": (3, 5, 5), "res4": (3, 11, 11), "res5": (3, 11, 11)}


def test_i3d_tiny_and_probe_fields() -> None:
    tiny = receptive_fields(create_model("i3d_tiny", num_classes=5), input_size=(32, 160, 160))
    assert tiny == {"res2": (7, 19, 19), "res3": (12, 27, 27), "res4": (16, 43, 43), "res5": (16, 75, 75)}
    probe = receptive_fields(create_model("i3d_probe", num_classes=5), input_size=(32, 96, 96))
    assert probe == {"res2": (7, 19, 19), "res3": (12, 27, 27), "res4": (16, 27, 27), "res5": (16, 27, 27)}


def test_an_input_too_small_for_the_field_is_refused() -> None:
    with pytest.raises(ValueError, match="res5: the receptive field reaches the border of the .* input; use a larger input_size"):
        receptive_fields(create_model("i3d_tiny", num_classes=5), input_size=(32, 64, 64))
