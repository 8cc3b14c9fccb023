"""scripts/attention_share.py: the attention-share ratio on cases whose answer is known (uniform
attention gives 1, attention on the partner's only cell gives the number of cells), and end to end
on a relations dataset with a model whose Non-local attention is uniform.
"""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

from videoattn.blocks import NonLocal3d
from videoattn.models import create_model
from videoattn.synth import RELATION_CLASSES, generate_dataset

SCRIPT = Path(__file__).parent.parent / "scripts" / "attention_share.py"


@pytest.fixture(scope="module")
def share():
    spec = importlib.util.spec_from_file_location("attention_share_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["attention_share_script"] = module
    spec.loader.exec_module(module)
    yield module
    del sys.modules["attention_share_script"]


def test_cell_cover_averages_the_mask_over_each_cell(share) -> None:
    mask = torch.zeros(4, 8, 8)
    mask[2:, :4, :2] = 1.0  # frames 2-3, top-left 4x2 pixels
    cover = share.cell_cover(mask, (2, 2, 2))
    expected = torch.zeros(2, 2, 2)
    expected[1, 0, 0] = 8 / 16
    torch.testing.assert_close(cover, expected)


def test_ratio_known_answers(share) -> None:
    cover_q = torch.zeros(2, 4, 4)
    cover_q[0, 1, 1] = 1.0  # the query object: one cell
    cover_k = torch.zeros(2, 2, 2)
    cover_k[1, 0, 1] = 0.5  # the partner: half of one key cell out of 8
    uniform = torch.full((2, 4, 4, 2, 2, 2), 1 / 8)
    assert share.partner_ratio(uniform, cover_q, cover_k) == pytest.approx(1.0)
    focused = torch.zeros(2, 4, 4, 2, 2, 2)
    focused[..., 1, 0, 1] = 1.0  # every query looks only at the partner's cell
    assert share.partner_ratio(focused, cover_q, cover_k) == pytest.approx(8.0)  # c / mean(c) = 0.5 / (0.5 / 8)
    away = torch.zeros(2, 4, 4, 2, 2, 2)
    away[..., 0, 1, 0] = 1.0
    assert share.partner_ratio(away, cover_q, cover_k) == 0.0
    assert share.partner_ratio(uniform, torch.zeros(2, 4, 4), cover_k) is None


def test_uniform_attention_measures_one_on_every_video(share, tmp_path: Path) -> None:
    data = tmp_path / "synth"
    generate_dataset(data, task="relations", videos_per_class=1, split_fractions=(0.0, 0.0, 1.0), frames=(32, 36), workers=1, progress=False)
    model = create_model("i3d_probe_nl", num_classes=len(RELATION_CLASSES))
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, NonLocal3d):  # theta = phi = 0: every query attends uniformly
                for conv in (m.conv_theta, m.conv_phi):
                    conv.weight.zero_()
                    if conv.bias is not None:
                        conv.bias.zero_()
    ckpt = tmp_path / "m.ckpt"
    torch.save({"state_dict": {f"backbone.{k}": v for k, v in model.state_dict().items()},
                "hyper_parameters": {"backbone": "i3d_probe_nl", "num_classes": len(RELATION_CLASSES), "class_names": RELATION_CLASSES},
                "datamodule_hyper_parameters": {"num_frames": 8, "sampling_rate": 4, "crop_size": 64}}, ckpt)
    ratios, example = share.measure(str(ckpt), str(data))
    assert len(ratios) == 2  # the two NL blocks of i3d_probe_nl
    for values in ratios.values():
        assert len(values) == len(RELATION_CLASSES) and all(v == pytest.approx(1.0, abs=1e-4) for v in values)
    figure = tmp_path / "map.png"
    share.main(["--checkpoint", str(ckpt), "--data", str(data), "--limit", "2", "--figure", str(figure)])
    assert figure.stat().st_size > 1000
    with pytest.raises(SystemExit, match="a 'actions' dataset; the attention share needs the relations task"):
        generate_dataset(tmp_path / "actions", videos_per_class=1, split_fractions=(0.0, 0.0, 1.0), frames=(8, 8), workers=1, progress=False)
        share.main(["--checkpoint", str(ckpt), "--data", str(tmp_path / "actions")])
