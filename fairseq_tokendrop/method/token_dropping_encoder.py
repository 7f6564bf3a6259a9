"""fairseq's ``TransformerEncoder`` that runs its layers on a plan's tokens.

A plan (``layer_plans.py``, made once per forward by a strategy,
``strategies.py``) says which tokens each layer sees: the token-dropping layout
(Hou et al. 2022; TF Model Garden; ScTD) or random-LTD's layerwise one (Yao et
al. 2022). Both go through one layer loop here. Without a plan this is the
stock encoder, call for call: fairseq's own ``forward`` runs.
"""
from typing import Optional, Union

import torch
from torch import Tensor, nn
from fairseq.distributed import fsdp_wrap
from fairseq.models.transformer import TransformerConfig, TransformerEncoder
from .activation_checkpointing import checkpoint_layer
from .cross_attention_layer import TokenDroppingEncoderLayer
from .layer_plans import LayerwisePlan, TokenDroppingPlan, padding_masks

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

        Written out rather than called: fairseq's hard-codes both the layer class and its reentrant
        checkpoint wrapper. The same wrappers in the same order: ``--checkpoint-activations`` then
        ``fsdp_wrap`` (a no-op outside ``--ddp-backend fully_sharded``, which the task refuses at
        startup). The checkpoint is non-reentrant where fairseq's is reentrant: ScTD runs each layer
        twice per backward, which fairseq's breaks under torch DDP (see ``activation_checkpointing``).
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
        segment_labels: Optional[Tensor] = None,
        plan: Union[TokenDroppingPlan, LayerwisePlan, None] = None,
    ):
        """As ``TransformerEncoder.forward``, plus:

        Args:
            segment_labels: ``[B, T]`` segment ids, for an encoder with segment embeddings.
            plan: which tokens each layer sees, or None for all tokens.
        Returns the stock dict, plus ``last_layer_input`` ``[T, B, C]`` (the
        output of layer N-2, full length: what ScTD's local loss compares; None
        in eval mode without ``return_all_hiddens``) and
        ``kept_padding_mask`` ``[B, K]`` (random-LTD: the first wrapped layer's;
        every wrapped layer sees as many real tokens, as padding is drawn last).
        """
        if token_embeddings is None:
            token_embeddings = self.token_embedding(src_tokens, segment_labels)
        if plan is None:
            if self.training and not return_all_hiddens:
                out = self._forward_keeping_last_layer_input(src_tokens, src_lengths, token_embeddings)
            else:
                out = super().forward(src_tokens, src_lengths, return_all_hiddens, token_embeddings)
                out["last_layer_input"] = out["encoder_states"][-2] if return_all_hiddens else None
            out["kept_padding_mask"] = out["encoder_padding_mask"][0]
            return out
        if return_all_hiddens and not plan.full_length_states:
            raise ValueError("return_all_hiddens is not defined while the middle layers see only the kept tokens")
        return self._forward_planned(src_tokens, plan, token_embeddings, return_all_hiddens)

    def _forward_keeping_last_layer_input(self, src_tokens, src_lengths, token_embeddings):
        """The stock forward, plus ``last_layer_input``: the input of the last layer (what ScTD's local
        loss reads).

        Only that state is kept: fairseq's ``return_all_hiddens`` would keep every layer's output alive
        until the forward ends, on the device even under ``--offload-activations``, whose point is that
        the layers' inputs live in CPU memory. The last layer's input is taken as it enters the layer,
        through a hook that lives for this call only (nothing stays registered on the model).
        """
        entering = []
        hook = self.layers[-1].register_forward_pre_hook(lambda layer, args: entering.append(args[0]))
        try:
            out = super().forward(src_tokens, src_lengths, False, token_embeddings)
        finally:
            hook.remove()
        out["last_layer_input"] = entering[0]
        return out

    def _forward_planned(self, src_tokens, plan, token_embeddings, return_all_hiddens):
        """The stock forward's embedding, layer loop and final LayerNorm, each layer on the plan's tokens."""
        padding = src_tokens.eq(self.padding_idx)
        kept_padding = plan.kept_padding(padding)
        masks = padding_masks(padding, kept_padding)
        x, embedding = self.forward_embedding(src_tokens, token_embeddings)
        if masks.full is not None:  # padded positions zeroed, as the stock encoder zeroes them
            x = x * (1 - padding.unsqueeze(-1).type_as(x))
        x = x.transpose(0, 1)
        states = [x] if return_all_hiddens else []
        for i, layer in enumerate(self.layers):
            x = plan.run(i, layer, x, masks)
            if return_all_hiddens:
                states.append(x)
        if self.layer_norm is not None:
            x = self.layer_norm(x)
        return {
            "encoder_out": [x],
            "encoder_padding_mask": [padding],
            "encoder_embedding": [embedding],
            "encoder_states": states,
            "last_layer_input": plan.last_layer_input,
            "kept_padding_mask": plan.first_kept_padding(kept_padding),
        }
