"""fairseq's ``TransformerEncoder`` with the token-dropping layout.

For N layers and kept positions ``keep_index`` (Hou et al. 2022; TF Model
Garden ``token_dropping/encoder.py``; ScTD, Zhong et al. 2023):

- layers ``[0, N//2-1)`` see all tokens;
- layer ``N//2-1`` attends from the kept tokens to all tokens and returns the
  kept tokens only;
- layers ``[N//2, N-1)`` see the kept tokens only, in positional order;
- dropped tokens re-enter with the state they had entering layer ``N//2-1``,
  and layer ``N-1`` sees all tokens. The output is full length.

Without ``keep_index`` this is the stock encoder, call for call.

With ``layerwise`` instead (random-LTD, Yao et al. 2022; see ``random_ltd.py``)
every layer sees all tokens except the wrapped ones, each of which runs on
its own kept tokens and passes the others through unchanged.

Padding masks follow the stock encoder's rule (``has_pads``): a layer gets a
mask only when its tokens include padding, so without padding every attention
call can take PyTorch's flash backend, which takes no mask. Whether the full
and the kept tokens hold padding is read in one host sync per forward, the one
the stock encoder pays for its ``has_pads``.
"""
from typing import Optional

import torch
from torch import Tensor, nn
from fairseq.distributed import fsdp_wrap
from fairseq.models.transformer import TransformerConfig, TransformerEncoder
from .activation_checkpointing import checkpoint_layer
from .cross_attention_layer import TokenDroppingEncoderLayer
from .random_ltd import LayerwiseKeep, kept_padding_masks, run_on_kept
from .token_selection import scatter_tokens

MIN_LAYERS = 4


class TokenDroppingTransformerEncoder(TransformerEncoder):
    def __init__(self, args, dictionary, embed_tokens, return_fc=False):
        super().__init__(args, dictionary, embed_tokens, return_fc)
        # BERT's token-type embeddings, added to the token embeddings before the positions and the
        # embedding LayerNorm, as BERT adds them. Added at the input, they ride with the kept tokens.
        self.embed_segments = (nn.Embedding(args.num_segment, embed_tokens.embedding_dim)
                               if getattr(args, "num_segment", 0) > 0 else None)

    def token_embedding(self, src_tokens: Tensor, segment_labels: Optional[Tensor]) -> Optional[Tensor]:
        """``[B, T, C]`` token plus segment embeddings, or None (fairseq then embeds the tokens itself)."""
        if self.embed_segments is None:
            return None
        if segment_labels is None:
            segment_labels = torch.zeros_like(src_tokens)
        return self.embed_tokens(src_tokens) + self.embed_segments(segment_labels)

    def build_encoder_layer(self, args):
        """fairseq's ``TransformerEncoderBase.build_encoder_layer`` with the layer class that can cross-attend.

        The same wrappers in the same order: ``--checkpoint-activations`` then
        ``fsdp_wrap`` (a no-op outside ``--ddp-backend fully_sharded``, which the
        plugin refuses at startup, see ``flags.check_ddp_backend``). The checkpoint
        is non-reentrant where fairseq's is reentrant: ScTD runs each layer twice per
        backward, which fairseq's breaks under torch DDP (see ``activation_checkpointing``).
        """
        cfg = TransformerConfig.from_namespace(args)
        layer = TokenDroppingEncoderLayer(cfg, return_fc=self.return_fc)
        if cfg.checkpoint_activations:
            layer = checkpoint_layer(layer, offload_to_cpu=cfg.offload_activations)
        return fsdp_wrap(layer, min_num_params=0 if cfg.checkpoint_activations else cfg.min_params_to_wrap)

    def forward(
        self,
        src_tokens: Tensor,
        src_lengths: Optional[Tensor] = None,
        return_all_hiddens: bool = False,
        token_embeddings: Optional[Tensor] = None,
        keep_index: Optional[Tensor] = None,
        segment_labels: Optional[Tensor] = None,
        layerwise: Optional[LayerwiseKeep] = None,
    ):
        """As ``TransformerEncoder.forward``, plus:

        Args:
            keep_index: ``[B, K]`` ascending kept positions, or None for all tokens.
            segment_labels: ``[B, T]`` segment ids, for an encoder with segment embeddings.
            layerwise: random-LTD's kept positions per wrapped layer (instead of ``keep_index``).
        Returns the stock dict, plus ``last_layer_input`` ``[T, B, C]`` (the
        output of layer N-2, full length: what ScTD's local loss compares; None
        in eval mode without ``return_all_hiddens``) and
        ``kept_padding_mask`` ``[B, K]`` (random-LTD: the first wrapped layer's;
        every wrapped layer sees as many real tokens, as padding is drawn last).
        """
        if token_embeddings is None:
            token_embeddings = self.token_embedding(src_tokens, segment_labels)
        if layerwise is not None:
            return self._forward_layerwise(src_tokens, layerwise, token_embeddings, return_all_hiddens)
        if keep_index is None:
            # Only training (ScTD) reads the last layer's input; collecting every
            # layer's output in inference would keep them all alive at once.
            collect = return_all_hiddens or self.training
            out = super().forward(src_tokens, src_lengths, collect, token_embeddings)
            out["last_layer_input"] = out["encoder_states"][-2] if collect else None
            out["kept_padding_mask"] = out["encoder_padding_mask"][0]
            if not return_all_hiddens:
                out["encoder_states"] = []
            return out
        if return_all_hiddens:
            raise ValueError("return_all_hiddens is not defined while tokens are dropped")
        return self._forward_dropping(src_tokens, keep_index, token_embeddings)

    def _forward_dropping(self, src_tokens, keep_index, token_embeddings):
        n = len(self.layers)
        split = n // 2 - 1
        padding = src_tokens.eq(self.padding_idx)
        kept_padding = padding.gather(1, keep_index)
        has_pads, kept_has_pads = torch.stack([padding.any(), kept_padding.any()]).tolist()
        full_mask = padding if has_pads else None
        kept_mask = kept_padding if kept_has_pads else None

        x, embedding = self._embedded(src_tokens, token_embeddings, padding, has_pads)
        for layer in self.layers[:split]:
            x = layer(x, encoder_padding_mask=full_mask)

        kept = self.layers[split](x, encoder_padding_mask=full_mask, keep_index=keep_index)
        for layer in self.layers[split + 1 : n - 1]:
            kept = layer(kept, encoder_padding_mask=kept_mask)

        last_input = scatter_tokens(x, keep_index, kept)
        x = self.layers[n - 1](last_input, encoder_padding_mask=full_mask)
        return self._output(x, padding, embedding, [], last_input, kept_padding)

    def _forward_layerwise(self, src_tokens, layerwise: LayerwiseKeep, token_embeddings, return_all_hiddens):
        padding = src_tokens.eq(self.padding_idx)
        kept_padding = kept_padding_masks(padding, layerwise.index)
        # one host sync, as in _forward_dropping: padding is drawn last, so either every wrapped layer
        # has padding among its kept tokens or none has
        has_pads, kept_has_pads = torch.stack([padding.any(), kept_padding.any()]).tolist()
        full_mask = padding if has_pads else None

        x, embedding = self._embedded(src_tokens, token_embeddings, padding, has_pads)
        states = [x] if return_all_hiddens else []
        last_input = None
        for layer, slot in zip(self.layers, layerwise.slots):
            last_input = x
            if slot is None:
                x = layer(x, encoder_padding_mask=full_mask)
            else:
                x = run_on_kept(layer, x, layerwise.index[slot], kept_padding[slot] if kept_has_pads else None)
            if return_all_hiddens:
                states.append(x)
        return self._output(x, padding, embedding, states, last_input, kept_padding[0])

    def _embedded(self, src_tokens, token_embeddings, padding, has_pads):
        """``[T, B, C]`` input of the first layer, padded positions zeroed as the stock encoder zeroes them,
        and the embedding ``[B, T, C]``."""
        x, embedding = self.forward_embedding(src_tokens, token_embeddings)
        if has_pads:
            x = x * (1 - padding.unsqueeze(-1).type_as(x))
        return x.transpose(0, 1), embedding

    def _output(self, x, padding, embedding, states, last_input, kept_padding):
        """The stock encoder's output dict after its final LayerNorm, plus the dropping layouts' two keys."""
        if self.layer_norm is not None:
            x = self.layer_norm(x)
        return {
            "encoder_out": [x],
            "encoder_padding_mask": [padding],
            "encoder_embedding": [embedding],
            "encoder_states": states,
            "last_layer_input": last_input,
            "kept_padding_mask": kept_padding,
        }
