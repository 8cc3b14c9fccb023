"""videoattn.blocks._pointwise: the CPU-tuned 1x1x1-conv Function runs on the CPU only; on other
devices the blocks use plain convolutions (the choice is made per device by uses_cpu_gemm).
"""
from __future__ import annotations

import pytest
import torch
from torch import nn

from videoattn.blocks import CGNL3d, NonLocal3d
from videoattn.blocks import _pointwise
from videoattn.blocks._pointwise import pointwise_conv, project, uses_cpu_gemm


def test_the_choice_is_per_device() -> None:
    assert uses_cpu_gemm(torch.device("cpu")) and uses_cpu_gemm("cpu")
    for device in ("cuda", "cuda:1", "mps", "xpu", "meta"):
        assert not uses_cpu_gemm(torch.device(device))


@pytest.fixture
def count_function_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    apply = _pointwise._PointwiseConv.apply

    def counting_apply(*args):
        calls.append(1)
        return apply(*args)

    monkeypatch.setattr(_pointwise._PointwiseConv, "apply", counting_apply)
    return calls


@pytest.mark.parametrize("device", ["cpu", "meta"])
def test_pointwise_conv_and_project_use_the_function_only_on_the_cpu(device: str, count_function_calls: list[int]) -> None:
    conv = nn.Conv3d(8, 6, 1).to(device)
    x = torch.randn(2, 8, 2, 3, 3, device=device)
    assert pointwise_conv(conv, x).shape == (2, 6, 18)
    assert pointwise_conv(conv, x.flatten(2)).shape == (2, 6, 18)
    assert project(conv.weight.flatten(1), x.flatten(2), conv.bias).shape == (2, 6, 18)
    assert len(count_function_calls) == (3 if device == "cpu" else 0)


@pytest.mark.parametrize("device", ["cpu", "meta"])
def test_blocks_use_the_function_only_on_the_cpu(device: str, count_function_calls: list[int]) -> None:
    x = torch.randn(1, 16, 2, 4, 4, device=device)
    for block in (NonLocal3d(16), NonLocal3d(16, impl="folded"), CGNL3d(16, groups=2)):
        assert block.to(device)(x).shape == x.shape
    assert (len(count_function_calls) > 0) == (device == "cpu")


def test_project_equals_a_plain_conv() -> None:
    """The CPU Function and the standard op give the same result (the latter as run on other devices)."""
    gen = torch.Generator().manual_seed(3)
    w, b = torch.randn(6, 8, generator=gen), torch.randn(6, generator=gen)
    x = torch.randn(2, 8, 10, generator=gen)
    expected = torch.nn.functional.conv1d(x, w.unsqueeze(-1), b)
    torch.testing.assert_close(project(w, x, b), expected)
    torch.testing.assert_close(project(w.t().contiguous().t(), x), expected - b.view(1, -1, 1))


def test_a_model_with_blocks_compiles_forward_and_backward(count_function_calls: list[int]) -> None:
    """Under torch.compile the blocks use the standard ops: dynamo could not trace the Function's
    per-clip backward loop over the symbolic shapes of a whole model (it failed on i3d_tiny_nl)."""
    from videoattn.models import create_model

    torch._dynamo.reset()
    torch.manual_seed(0)
    model = create_model("i3d_tiny_nl", num_classes=4).eval()
    x = torch.randn(2, 3, 4, 32, 32, requires_grad=True)
    compiled = torch.compile(model, backend="aot_eager")
    out = compiled(x)
    out.sum().backward()
    compiled_calls = len(count_function_calls)
    torch.testing.assert_close(out, model(x), atol=1e-5, rtol=1e-4)
    assert x.grad is not None and torch.isfinite(x.grad).all()
    assert compiled_calls == 0 and len(count_function_calls) > 0  # compiled: standard ops; eager CPU: the Function
