"""Contract tests for every block in videoattn.blocks.BLOCKS: shape, identity at initialisation,
gradients after one optimizer step, bf16 autocast, torch.compile, channels_last_3d, bad input.
"""
from __future__ import annotations

import pytest
import torch
from torch import nn

from videoattn.blocks import (
    BLOCKS,
    CGNL3d,
    GlobalContext3d,
    LocalRelationBlock3d,
    NonLocal3d,
    RelationModule3d,
    SqueezeExcite3d,
    TransformerEncoder3d,
    list_blocks,
    make_block,
)

C = 32
IDENTITY_AT_INIT = {"nl", "gc", "cgnl", "lr", "relation", "transformer"}
# Parameters whose gradient is exactly zero by construction, not by a bug: softmax over positions
# is invariant to a constant shift, so the bias of GC's conv_mask never receives a gradient
# (the same holds in GCNet's reference ContextBlock).
ZERO_GRAD_BY_DESIGN = {"gc": {"conv_mask.bias"}}


def _x(seed: int = 0, shape: tuple[int, ...] = (2, C, 4, 6, 6)) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


def test_registry_names_and_classes() -> None:
    assert list_blocks() == ["nl", "gc", "se", "cgnl", "lr", "relation", "transformer"]
    assert BLOCKS == {
        "nl": NonLocal3d, "gc": GlobalContext3d, "se": SqueezeExcite3d, "cgnl": CGNL3d,
        "lr": LocalRelationBlock3d, "relation": RelationModule3d, "transformer": TransformerEncoder3d,
    }
    block = make_block("cgnl", 32, groups=4, kernel="gaussian")
    assert isinstance(block, CGNL3d) and block.groups == 4 and block.kernel == "gaussian"


def test_unknown_block_name_lists_valid_names() -> None:
    with pytest.raises(ValueError, match=r"unknown block 'foo'.*'nl', 'gc', 'se', 'cgnl', 'lr', 'relation', 'transformer'"):
        make_block("foo", C)


@pytest.mark.parametrize("name", list_blocks())
def test_shape_and_identity_at_init(name: str) -> None:
    torch.manual_seed(0)
    block = make_block(name, C)
    x = _x()
    out = block(x)
    assert out.shape == x.shape
    if name in IDENTITY_AT_INIT:
        torch.testing.assert_close(out, x, rtol=0, atol=0)
        block.eval()
        torch.testing.assert_close(block(x), x, rtol=0, atol=0)
    else:  # SE gates every channel by a sigmoid in (0, 1): never the identity
        assert not torch.allclose(out, x)


@pytest.mark.parametrize("name", list_blocks())
def test_every_parameter_gets_a_gradient_after_one_step(name: str) -> None:
    torch.manual_seed(0)
    block = make_block(name, C)
    opt = torch.optim.SGD(block.parameters(), lr=0.5)
    x, target = _x(1), _x(2)
    for step in range(2):
        opt.zero_grad()
        nn.functional.mse_loss(block(x), target).backward()
        if step == 0:
            opt.step()
    exempt = ZERO_GRAD_BY_DESIGN.get(name, set())
    for pname, p in block.named_parameters():
        assert p.grad is not None, pname
        assert torch.isfinite(p.grad).all(), pname
        if pname in exempt:
            assert p.grad.abs().max() < 1e-6, pname
        else:
            assert p.grad.abs().sum() > 0, f"{name}: {pname} received no gradient"
    # the output has moved away from the identity after the step
    assert not torch.allclose(block(x), x)


def _trained_like(name: str, **kwargs) -> nn.Module:
    """A block whose zero-initialised parameters are randomised, so that no branch is trivially 0."""
    torch.manual_seed(3)
    block = make_block(name, C, **kwargs)
    with torch.no_grad():
        for p in block.parameters():
            p.copy_(torch.randn_like(p) * 0.3)
    return block


@pytest.mark.parametrize("name", list_blocks())
def test_bf16_autocast_runs(name: str) -> None:
    block = _trained_like(name)
    x = _x(4, (1, C, 2, 4, 4))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = block(x)
    assert out.shape == x.shape
    assert out.dtype in (torch.float32, torch.bfloat16)
    assert torch.isfinite(out).all()
    out.float().sum().backward()
    assert all(p.grad is not None for p in block.parameters() if p.requires_grad)


@pytest.mark.parametrize("name", list_blocks())
def test_channels_last_3d_gives_the_same_result(name: str) -> None:
    block = _trained_like(name).eval()
    x = _x(5)
    ref = block(x)
    block_cl = block.to(memory_format=torch.channels_last_3d)
    out = block_cl(x.contiguous(memory_format=torch.channels_last_3d))
    assert out.shape == x.shape
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-5)


def _compile_model(extra_nl: bool) -> nn.Sequential:
    # All blocks in one module, so that each test compiles once (compiling is the slow part on the
    # CPU); extra_nl adds NonLocal3d's chunked attention (a custom autograd.Function) and the
    # dot_product reordering.
    torch.manual_seed(6)
    blocks = [_trained_like(name) for name in list_blocks()]
    blocks.append(_trained_like("lr", impl="window"))  # at 2x4x4 the registry's lr computes densely
    if extra_nl:
        blocks += [NonLocal3d(C, impl="chunked"), NonLocal3d(C, instantiation="dot_product", impl="auto")]
    return nn.Sequential(*blocks).eval()


def test_torch_compile_inductor_matches_eager() -> None:
    model = _compile_model(extra_nl=False)
    x = _x(7, (1, C, 2, 4, 4))
    with torch.no_grad():
        ref = model(x)
        out = torch.compile(model)(x)
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-4)


def test_torch_compile_training_graph_matches_eager() -> None:
    # Forward + backward captured by dynamo and AOTAutograd (the training path of torch.compile);
    # the aot_eager backend skips inductor's code generation, which the test above covers.
    model = _compile_model(extra_nl=True)
    x = _x(8, (1, C, 2, 4, 4))
    x_ref, x_c = x.clone().requires_grad_(), x.clone().requires_grad_()
    ref = model(x_ref)
    ref.square().sum().backward()
    grads_ref = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    # compiled, the 1x1x1 convs are standard ops while eager CPU runs the GEMM Function: the same math
    # in another float32 summation order (differences up to 4e-5 measured)
    out = torch.compile(model, backend="aot_eager")(x_c)
    out.square().sum().backward()
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(x_c.grad, x_ref.grad, rtol=1e-4, atol=1e-4)
    for p, g in zip(model.parameters(), grads_ref):
        torch.testing.assert_close(p.grad, g, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", list_blocks())
@pytest.mark.parametrize(
    "shape, match",
    [
        ((2, C, 4, 4), r"expected input of shape \(N, C=32, T, H, W\), got \(2, 32, 4, 4\)"),
        ((2, C + 1, 2, 4, 4), r"channel count 33 != 32"),
    ],
)
def test_bad_input_raises_value_error(name: str, shape: tuple[int, ...], match: str) -> None:
    block = make_block(name, C)
    with pytest.raises(ValueError, match=match):
        block(torch.randn(shape))


@pytest.mark.parametrize("name", list_blocks())
@pytest.mark.parametrize("shape", [(1, 32, 2, 2, 2), (2, 48, 3, 5, 5), (1, 128, 8, 8, 8)], ids=["32", "48", "128"])
def test_defaults_work_at_the_tiny_sizes_of_cpu_models(name: str, shape: tuple[int, ...]) -> None:
    """What the CPU ablation inserts into tiny models: C = 32..128, T = 2..8, H = W = 2..8."""
    block = _trained_like_at(name, shape[1])
    x = _x(9, shape).requires_grad_()
    out = block(x)
    assert out.shape == x.shape and torch.isfinite(out).all()
    out.square().mean().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def _trained_like_at(name: str, channels: int) -> nn.Module:
    torch.manual_seed(3)
    block = make_block(name, channels)
    with torch.no_grad():
        for p in block.parameters():
            p.copy_(torch.randn_like(p) * 0.3)
    return block


@pytest.mark.parametrize("name", list_blocks())
def test_bad_channel_count_argument(name: str) -> None:
    with pytest.raises(ValueError, match="in_channels must be a positive int"):
        make_block(name, 0)
