"""TransformerEncoder3d: its encoder layer equals DETR's TransformerEncoderLayer.forward_post
(written below as facebookresearch/detr has it, with torch.nn.MultiheadAttention) with the same
weights, in outputs and gradients; the sine encoding equals DETR's PositionEmbeddingSine on one
frame; pooled keys; identity at initialisation; bad arguments.
"""
from __future__ import annotations

import copy
import math
from typing import Optional

import pytest
import torch
from torch import Tensor, nn

from videoattn.blocks import TransformerEncoder3d
from videoattn.blocks.transformer_encoder3d import position_channels, sine_position_encoding


class DetrEncoderLayer(nn.Module):
    """facebookresearch/detr models/transformer.py TransformerEncoderLayer (post-norm path)."""

    def __init__(self, d_model, nhead, dim_feedforward=2048, dropout=0.1):
        super().__init__()
        self.self_attn = nn.MultiheadAttention(d_model, nhead, dropout=dropout)
        # Implementation of Feedforward model
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.dropout = nn.Dropout(dropout)
        self.linear2 = nn.Linear(dim_feedforward, d_model)

        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)

        self.activation = nn.functional.relu

    def with_pos_embed(self, tensor, pos: Optional[Tensor]):
        return tensor if pos is None else tensor + pos

    def forward_post(self, src, src_mask: Optional[Tensor] = None, src_key_padding_mask: Optional[Tensor] = None,
                     pos: Optional[Tensor] = None):
        q = k = self.with_pos_embed(src, pos)
        src2 = self.self_attn(q, k, value=src, attn_mask=src_mask,
                              key_padding_mask=src_key_padding_mask)[0]
        src = src + self.dropout1(src2)
        src = self.norm1(src)
        src2 = self.linear2(self.dropout(self.activation(self.linear1(src))))
        src = src + self.dropout2(src2)
        src = self.norm2(src)
        return src


def detr_position_embedding_sine(mask: Tensor, num_pos_feats: int, temperature: float = 10000, scale: float = 2 * math.pi) -> Tensor:
    """facebookresearch/detr models/position_encoding.py PositionEmbeddingSine(normalize=True).forward."""
    not_mask = ~mask
    y_embed = not_mask.cumsum(1, dtype=torch.float32)
    x_embed = not_mask.cumsum(2, dtype=torch.float32)
    eps = 1e-6
    y_embed = y_embed / (y_embed[:, -1:, :] + eps) * scale
    x_embed = x_embed / (x_embed[:, :, -1:] + eps) * scale

    dim_t = torch.arange(num_pos_feats, dtype=torch.float32)
    dim_t = temperature ** (2 * (dim_t // 2) / num_pos_feats)

    pos_x = x_embed[:, :, :, None] / dim_t
    pos_y = y_embed[:, :, :, None] / dim_t
    pos_x = torch.stack((pos_x[:, :, :, 0::2].sin(), pos_x[:, :, :, 1::2].cos()), dim=4).flatten(3)
    pos_y = torch.stack((pos_y[:, :, :, 0::2].sin(), pos_y[:, :, :, 1::2].cos()), dim=4).flatten(3)
    pos = torch.cat((pos_y, pos_x), dim=3).permute(0, 3, 1, 2)
    return pos


def _x(shape: tuple[int, ...], seed: int = 0) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


def _pair(dropout: float = 0.0, **kwargs) -> tuple[TransformerEncoder3d, DetrEncoderLayer]:
    torch.manual_seed(1)
    ours = TransformerEncoder3d(32, heads=4, inner_channels=24, ffn_channels=40, dropout=dropout, **kwargs)
    with torch.no_grad():
        for p in ours.parameters():
            p.add_(torch.randn_like(p) * 0.1)  # norms and conv_out away from their initialisation
    detr = DetrEncoderLayer(24, 4, dim_feedforward=40, dropout=dropout)
    encoder_keys = {k: v for k, v in ours.state_dict().items() if not k.startswith(("input_proj.", "conv_out."))}
    detr.load_state_dict(encoder_keys)  # strict: DETR's names and shapes
    return ours, detr


def test_position_encoding_of_one_frame_is_detrs() -> None:
    channels = 48
    ft, fy, fx = position_channels(channels)
    assert (ft, fy, fx) == (16, 16, 16) and position_channels(256) == (84, 86, 86) and position_channels(20) == (8, 6, 6)
    pos = sine_position_encoding((1, 5, 7), channels)  # (35, 48), channels [t | y | x]
    detr = detr_position_embedding_sine(torch.zeros(1, 5, 7, dtype=torch.bool), fy)  # (1, 2 fy, 5, 7)
    torch.testing.assert_close(pos[:, ft:], detr.flatten(2)[0].t())
    # along t: DETR's 1-D encoding of frame positions 1..T
    pos_t = sine_position_encoding((4, 1, 1), channels)[:, :ft]
    detr_t = detr_position_embedding_sine(torch.zeros(1, 4, 1, dtype=torch.bool), ft)[0, :ft, :, 0].t()
    torch.testing.assert_close(pos_t, detr_t)


@pytest.mark.parametrize("train", [False, True])
def test_encoder_layer_equals_detr_forward_post(train: bool) -> None:
    ours, detr = _pair()
    ours.train(train), detr.train(train)
    x = _x((2, 32, 3, 4, 5), seed=2)
    x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
    src = ours.input_proj(x1).flatten(2).permute(2, 0, 1)  # (L, N, d), as DETR's Transformer.forward
    pos = ours.position_encoding(x.shape[2:])[:, None, :]  # (L, 1, d)
    expected = detr.forward_post(src, pos=pos)
    out = ours.encode(x2)  # (N, L, d)
    torch.testing.assert_close(out, expected.transpose(0, 1), rtol=1e-5, atol=1e-5)
    # the block: x + conv_out(tokens)
    block_out = ours(x2.detach())
    tokens = expected.detach().permute(1, 2, 0).reshape(2, 24, 3, 4, 5)
    torch.testing.assert_close(block_out, x + ours.conv_out(tokens), rtol=1e-5, atol=1e-5)
    # gradients, every parameter of the encoder layer and the input
    g = _x(tuple(expected.shape), seed=3)
    (expected * g).sum().backward()
    (out * g.transpose(0, 1)).sum().backward()
    torch.testing.assert_close(x2.grad, x1.grad, rtol=1e-4, atol=1e-5)
    theirs = dict(detr.named_parameters())
    for name, p in ours.named_parameters():
        if name in theirs:
            assert p.grad.abs().max() > 0, name
            torch.testing.assert_close(p.grad, theirs[name].grad, rtol=1e-4, atol=1e-5, msg=name)


def test_pooled_keys_equal_multihead_attention_on_pooled_tokens() -> None:
    ours, detr = _pair(pool_size=(1, 2, 2))
    ours.eval(), detr.eval()
    x = _x((2, 32, 2, 4, 6), seed=4)
    with torch.no_grad():
        src = ours.input_proj(x)  # (N, d, T, H, W)
        keys = nn.functional.max_pool3d(src, (1, 2, 2)).flatten(2).permute(2, 0, 1)  # (Np, N, d)
        src = src.flatten(2).permute(2, 0, 1)
        pos = ours.position_encoding(x.shape[2:])[:, None]
        # pooled cells at the centres of the positions they cover, in DETR's normalised coordinates
        pos_k = sine_position_encoding((2, 2, 3), 24, extent=(2, 4, 6), stride=(1, 2, 2))[:, None]
        src2 = detr.self_attn(src + pos, keys + pos_k, value=keys)[0]
        y = detr.norm1(src + src2)
        expected = detr.norm2(y + detr.linear2(torch.relu(detr.linear1(y))))
        torch.testing.assert_close(ours.encode(x), expected.transpose(0, 1), rtol=1e-5, atol=1e-5)
    # a pooled cell of two positions sits between them: mean of the positions' coordinates
    first_x = sum(position_channels(24)[:2])  # the x part's first channel: sin(x / 2 * 2 pi)
    centre = sine_position_encoding((1, 1, 1), 24, extent=(1, 1, 2), stride=(1, 1, 2))[0, first_x]
    torch.testing.assert_close(centre, torch.tensor(math.sin(1.5 / 2 * 2 * math.pi)), atol=1e-5, rtol=0)


def test_dropout_acts_in_training_only() -> None:
    ours, _ = _pair(dropout=0.5)
    x = _x((1, 32, 2, 3, 3), seed=5)
    ours.eval()
    torch.testing.assert_close(ours(x), ours(x))
    ours.train()
    assert not torch.allclose(ours(x), ours(x))


def test_identity_at_initialisation_and_defaults() -> None:
    block = TransformerEncoder3d(64)
    assert block.inner_channels == 16 and block.linear1.out_features == 64 and block.pool is None
    # C / 4 rounded down to an even multiple of heads
    assert TransformerEncoder3d(48).inner_channels == 8 and TransformerEncoder3d(32, heads=3).inner_channels == 6
    x = _x((1, 64, 2, 3, 3), seed=6)
    torch.testing.assert_close(block(x), x, rtol=0, atol=0)
    moved = copy.deepcopy(block)
    with torch.no_grad():
        moved.conv_out.weight.normal_()
    assert not torch.allclose(moved(x), x)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(heads=3, inner_channels=8), r"inner_channels=8 must be even and a multiple of heads=3"),
        (dict(inner_channels=9, heads=1), r"inner_channels=9 must be even"),
        (dict(dropout=1.0), r"dropout must be a number in \[0, 1\)"),
        (dict(ffn_channels=0), r"ffn_channels must be a positive int"),
        (dict(pool_size=(1, 2)), r"pool_size must be three positive ints"),
    ],
)
def test_bad_arguments(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        TransformerEncoder3d(32, **kwargs)
