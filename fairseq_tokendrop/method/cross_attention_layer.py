"""fairseq's encoder layer that can also run as the token-dropping cross-attention layer.

Layer ``N//2 - 1`` of the token-dropping layout (TF Model Garden
``token_dropping/encoder.py``, ScTD) takes the kept tokens as queries and all
tokens as keys and values, with the layer's own parameters, and returns the
kept tokens only. Everything but the attention inputs is the stock layer:
same projections, dropouts, residuals and layer norms, post-norm or pre-norm.

It runs inside the layer's own ``forward`` (``keep_index=...``), so the
wrappers fairseq puts around each layer's forward (``--checkpoint-activations``)
cover it as they cover every other layer. Without ``keep_index`` the forward
is the stock one, call for call; parameters and state-dict keys are the stock
layer's.
"""
from typing import Optional

import torch.nn.functional as F
from torch import Tensor
from fairseq.modules.transformer_layer import TransformerEncoderLayerBase

from .token_selection import gather_tokens


class TokenDroppingEncoderLayer(TransformerEncoderLayerBase):
    def forward(self, x: Tensor, encoder_padding_mask: Optional[Tensor], attn_mask: Optional[Tensor] = None,
                keep_index: Optional[Tensor] = None):
        """As the stock layer; with ``keep_index`` ``[B, K]``, queries are the kept rows of ``x [T, B, C]``
        and the result is ``[K, B, C]``. ``encoder_padding_mask`` masks keys (None: no padding)."""
        if keep_index is None:
            return super().forward(x, encoder_padding_mask, attn_mask)
        return self._cross_attention(x, keep_index, encoder_padding_mask)

    def _cross_attention(self, x: Tensor, keep_index: Tensor, context_padding_mask: Optional[Tensor]) -> Tensor:
        residual = gather_tokens(x, keep_index)
        context = self.self_attn_layer_norm(x) if self.normalize_before else x
        # pre-norm: the queries are rows of the normalised context, so LayerNorm runs once, over all tokens
        query = gather_tokens(context, keep_index) if self.normalize_before else residual
        x = self.dropout_module(self._attend(query, context, context_padding_mask))
        x = self.residual_connection(x, residual)
        if not self.normalize_before:
            x = self.self_attn_layer_norm(x)

        residual = x
        if self.normalize_before:
            x = self.final_layer_norm(x)
        x = self.activation_dropout_module(self.activation_fn(self.fc1(x)))
        x = self.dropout_module(self.fc2(x))
        x = self.residual_connection(x, residual)
        if not self.normalize_before:
            x = self.final_layer_norm(x)
        return x

    def _attend(self, query: Tensor, context: Tensor, context_padding_mask: Optional[Tensor]) -> Tensor:
        """Multi-head attention of ``query [K, B, C]`` over ``context [T, B, C]`` -> ``[K, B, C]``.

        No mask without padding, as the stock encoder passes none then: PyTorch's
        flash-attention backend takes no mask.
        """
        attn = self.self_attn
        heads, head_dim = attn.num_heads, attn.head_dim

        def split_heads(t: Tensor) -> Tensor:  # [L, B, C] -> [B, H, L, D]
            return t.view(t.size(0), t.size(1), heads, head_dim).permute(1, 2, 0, 3)

        mask = None
        if context_padding_mask is not None:  # fairseq: True = padding; SDPA: True = attend
            mask = ~context_padding_mask[:, None, None, :]
        out = F.scaled_dot_product_attention(
            split_heads(attn.q_proj(query)),
            split_heads(attn.k_proj(context)),
            split_heads(attn.v_proj(context)),
            attn_mask=mask,
            dropout_p=attn.dropout_module.p if self.training else 0.0,
        )
        return attn.out_proj(out.permute(2, 0, 1, 3).reshape(query.shape))
