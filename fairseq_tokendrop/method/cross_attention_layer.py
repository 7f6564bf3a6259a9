"""One stock fairseq encoder layer run as a cross-attention layer.

Layer ``N//2 - 1`` of the token-dropping layout (TF Model Garden
``token_dropping/encoder.py``, ScTD) takes the kept tokens as queries and all
tokens as keys and values, with the layer's own parameters, and returns the
kept tokens only. Everything but the attention inputs is the stock layer:
same projections, dropouts, residuals and layer norms, post-norm or pre-norm.
"""
from typing import Optional

import torch.nn.functional as F
from torch import Tensor
from fairseq.modules import TransformerEncoderLayer


def _attend(layer: TransformerEncoderLayer, query: Tensor, context: Tensor, context_padding_mask: Optional[Tensor]) -> Tensor:
    """Multi-head attention of ``query [K, B, C]`` over ``context [T, B, C]`` -> ``[K, B, C]``."""
    attn = layer.self_attn
    heads, head_dim = attn.num_heads, attn.head_dim

    def split_heads(x: Tensor) -> Tensor:  # [L, B, C] -> [B, H, L, D]
        return x.view(x.size(0), x.size(1), heads, head_dim).permute(1, 2, 0, 3)

    mask = None
    if context_padding_mask is not None:  # fairseq: True = padding; SDPA: True = attend
        mask = ~context_padding_mask[:, None, None, :]
    out = F.scaled_dot_product_attention(
        split_heads(attn.q_proj(query)),
        split_heads(attn.k_proj(context)),
        split_heads(attn.v_proj(context)),
        attn_mask=mask,
        dropout_p=attn.dropout_module.p if layer.training else 0.0,
    )
    return attn.out_proj(out.permute(2, 0, 1, 3).reshape(query.shape))


def cross_attention_layer(
    layer: TransformerEncoderLayer,
    query: Tensor,
    context: Tensor,
    context_padding_mask: Optional[Tensor],
) -> Tensor:
    """Run ``layer`` with queries ``query [K, B, C]`` and keys/values ``context [T, B, C]``.

    Returns ``[K, B, C]``: the kept tokens after the layer.
    """
    residual = query
    if layer.normalize_before:
        query = layer.self_attn_layer_norm(query)
        context = layer.self_attn_layer_norm(context)
    x = layer.dropout_module(_attend(layer, query, context, context_padding_mask))
    x = layer.residual_connection(x, residual)
    if not layer.normalize_before:
        x = layer.self_attn_layer_norm(x)

    residual = x
    if layer.normalize_before:
        x = layer.final_layer_norm(x)
    x = layer.activation_dropout_module(layer.activation_fn(layer.fc1(x)))
    x = layer.dropout_module(layer.fc2(x))
    x = layer.residual_connection(x, residual)
    if not layer.normalize_before:
        x = layer.final_layer_norm(x)
    return x
