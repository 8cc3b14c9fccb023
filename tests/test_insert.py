"""Tests for videoattn.models.insert: blocks inserted into models we did not write
(torchvision's r3d_18, pytorchvideo's x3d_s) by path and glob, after a module or
inside a residual branch, channels inferred, errors that list the paths.
"""
from __future__ import annotations

import copy

import pytest
import torch
import torchvision
from conftest import pretend_pretrained
from pytorchvideo.models import hub
from torch import nn

from videoattn.blocks import CGNL3d, GlobalContext3d, NonLocal3d, SqueezeExcite3d
from videoattn.models import Inserted, insert_blocks, match_paths


def run(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model.eval()(x)


def blocks_of(model: nn.Module) -> dict[str, nn.Module]:
    return {path: m.block for path, m in model.named_modules() if isinstance(m, Inserted)}


def wake(block: nn.Module) -> None:
    """Move a block off its identity initialisation."""
    with torch.no_grad():
        for p in block.parameters():
            p.add_(torch.randn_like(p) * 0.5)


X = torch.randn(1, 3, 4, 32, 32, generator=torch.Generator().manual_seed(0))


@pytest.fixture
def r3d() -> nn.Module:
    torch.manual_seed(0)
    return pretend_pretrained(torchvision.models.video.r3d_18(num_classes=10))


def test_inside_residual_branches_of_torchvision_r3d(r3d: nn.Module) -> None:
    before = run(r3d, X)
    model, paths = insert_blocks(r3d, "gc", "layer3.*", position="inside")
    assert model is r3d
    assert paths == ["layer3.0.conv2.1", "layer3.1.conv2.1"]  # after BN of the branch, not in downsample
    blocks = blocks_of(model)
    assert list(blocks) == paths and all(isinstance(b, GlobalContext3d) and b.in_channels == 256 for b in blocks.values())
    torch.testing.assert_close(run(model, X), before)  # GC is the identity at init
    wake(blocks[paths[1]])
    assert not torch.allclose(run(model, X), before)  # and it is on the forward path


def test_after_a_module_by_path(r3d: nn.Module) -> None:
    before = run(r3d, X)
    model, paths = insert_blocks(r3d, "nl", ["layer3.1", "layer2.0"], instantiation="dot_product")
    assert paths == ["layer2.0", "layer3.1"]  # model order
    blocks = blocks_of(model)
    assert [b.in_channels for b in blocks.values()] == [128, 256]
    assert all(b.instantiation == "dot_product" for b in blocks.values())
    torch.testing.assert_close(run(model, X), before)
    wake(blocks["layer3.1"])
    assert not torch.allclose(run(model, X), before)


def test_pytorchvideo_x3d_s() -> None:
    torch.manual_seed(0)
    x3d = pretend_pretrained(hub.x3d_s(pretrained=False))
    trunk = lambda m: nn.Sequential(*m.blocks[:-1])
    before = run(trunk(x3d), X)
    _, se_paths = insert_blocks(x3d, SqueezeExcite3d, "blocks.2.res_blocks.*", position="inside", ratio=1 / 4)
    assert se_paths == [f"blocks.2.res_blocks.{i}.branch2.norm_c" for i in range(len(x3d.blocks[2].res_blocks))]
    _, nl_paths = insert_blocks(x3d, NonLocal3d, "blocks.3.res_blocks.1")
    _, cg_paths = insert_blocks(x3d, "cgnl", "blocks.4.res_blocks.0", groups=4)
    blocks = blocks_of(x3d)
    assert set(blocks) == {*se_paths, *nl_paths, *cg_paths}
    assert blocks[se_paths[0]].fc1.in_channels == 48 and blocks[se_paths[0]].fc1.out_channels == 12
    assert blocks[nl_paths[0]].in_channels == 96
    assert isinstance(blocks[cg_paths[0]], CGNL3d) and blocks[cg_paths[0]].in_channels == 192
    after = run(trunk(x3d), X)
    assert after.shape == before.shape
    assert not torch.allclose(after, before)  # SE rescales channels
    for path in se_paths:  # without the SE blocks the model is its old self: NL and CGNL are identities
        wrapper = x3d.get_submodule(path.rpartition(".")[0])
        wrapper.norm_c = wrapper.norm_c.module
    torch.testing.assert_close(run(trunk(x3d), X), before)


def test_no_match_lists_available_paths(r3d: nn.Module) -> None:
    with pytest.raises(ValueError, match=r"'layer9\.\*' matches no module.*layer1\.0, layer1\.1, layer2\.0"):
        insert_blocks(r3d, "nl", "layer9.*")
    assert not blocks_of(r3d)


def test_glob_star_stays_within_one_segment(r3d: nn.Module) -> None:
    assert match_paths(r3d, "layer3.*") == ["layer3.0", "layer3.1"]
    assert match_paths(r3d, "layer*.1") == ["layer1.1", "layer2.1", "layer3.1", "layer4.1"]
    assert match_paths(r3d, ["layer4.1", "layer4.?"]) == ["layer4.0", "layer4.1"]


def test_bad_arguments(r3d: nn.Module) -> None:
    with pytest.raises(ValueError, match="position must be one of"):
        insert_blocks(r3d, "nl", "layer3.1", position="before")
    with pytest.raises(ValueError, match="unknown block 'attention'"):
        insert_blocks(r3d, "attention", "layer3.1")
    with pytest.raises(ValueError, match="no norm layer in a residual branch"):
        insert_blocks(r3d, "gc", "layer3.1.relu", position="inside")
    with pytest.raises(ValueError, match="cannot infer the channels"):
        insert_blocks(r3d, "gc", "layer3.1.relu")
    _, paths = insert_blocks(r3d, lambda c, **kw: nn.Identity(), "layer3.1.relu", in_channels=256)
    assert paths == ["layer3.1.relu"]


def test_inserted_model_copies_and_round_trips(r3d: nn.Module) -> None:
    insert_blocks(r3d, "nl", "layer3.1")
    wake(blocks_of(r3d)["layer3.1"])
    clone = copy.deepcopy(r3d)
    assert blocks_of(clone)["layer3.1"] is not blocks_of(r3d)["layer3.1"]
    fresh = insert_blocks(torchvision.models.video.r3d_18(num_classes=10), "nl", "layer3.1")[0]
    fresh.load_state_dict(r3d.state_dict())  # strict: same keys
    torch.testing.assert_close(run(fresh, X), run(r3d, X))


def _host(name: str) -> tuple[nn.Module, str, str, torch.Tensor]:
    """A model, the residual block NL goes after, the pattern GC goes inside, and an input."""
    torch.manual_seed(0)
    if name == "r3d_18":
        return pretend_pretrained(torchvision.models.video.r3d_18(num_classes=10)), "layer3.1", "layer3.*", X
    from videoattn.models import create_model

    model = pretend_pretrained(create_model("i3d_tiny", num_classes=3))
    return model, "blocks.3.res_blocks.0", "blocks.3.res_blocks.*", torch.randn(1, 3, 4, 32, 32, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("host", ["r3d_18", "i3d_tiny"])
def test_inside_finds_the_hosts_residual_branch_whatever_was_inserted_before(host: str) -> None:
    """NL after a residual block, then GC inside the blocks, or GC first then NL: the same model.
    The NL block's own norm is not a residual branch of the host: GC never goes inside NL."""
    nl_first, after, inside, x = _host(host)
    insert_blocks(nl_first, "nl", after)
    _, gc_paths = insert_blocks(nl_first, "gc", inside, position="inside")
    gc_first, _, _, _ = _host(host)
    _, gc_paths_first = insert_blocks(gc_first, "gc", inside, position="inside")
    insert_blocks(gc_first, "nl", after)

    def placed(model: nn.Module) -> dict[str, str]:
        return {path: type(m).__name__ for path, m in model.named_modules() if isinstance(m, (NonLocal3d, GlobalContext3d))}

    assert placed(nl_first) == placed(gc_first)
    assert not any(path.startswith(f"{after}.block.") for path in placed(nl_first))  # nothing inside the NL block
    assert all(nl_first.get_submodule(p).module.__class__.__name__.startswith("BatchNorm") for p in gc_paths)  # after the host's norm
    assert len(gc_paths) == len(gc_paths_first) and gc_paths[-1 if host == "i3d_tiny" else 1].startswith(f"{after}.module.")
    assert list(nl_first.state_dict()) == list(gc_first.state_dict())
    for block in blocks_of(nl_first).values():
        wake(block)
    gc_first.load_state_dict(nl_first.state_dict())
    torch.testing.assert_close(run(gc_first, x), run(nl_first, x))


def test_inside_twice_puts_the_second_block_after_the_first(r3d: nn.Module) -> None:
    """GC inside, then SE inside the same residual blocks: norm -> GC -> SE, both on the branch."""
    _, gc_paths = insert_blocks(r3d, "gc", "layer3.*", position="inside")
    _, se_paths = insert_blocks(r3d, "se", "layer3.*", position="inside")
    assert gc_paths == se_paths == ["layer3.0.conv2.1", "layer3.1.conv2.1"]
    outer = r3d.get_submodule("layer3.1.conv2.1")
    assert isinstance(outer.block, SqueezeExcite3d) and isinstance(outer.module, Inserted) and isinstance(outer.module.block, GlobalContext3d)
