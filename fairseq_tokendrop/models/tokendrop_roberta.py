"""RoBERTa whose middle layers see only the kept tokens while training.

Two layouts: token dropping (``--token-drop-strategy importance`` or
``random``: one kept subset through the middle layers, ``token_dropping_encoder.py``)
and random-LTD (``random-ltd``: a fresh subset per wrapped layer, ``random_ltd.py``).
The number kept is fixed (``--token-drop``/``--token-keep-k``) or follows the
update count (``--token-keep-schedule``, ``keep_schedule.py``).

A ``RobertaModel`` in every other respect: same parameters and state-dict
keys, so a checkpoint loads into stock ``--arch roberta_base``; in eval mode it
is exactly RoBERTa over all tokens. The BERT options (``--num-segment``,
``--layer-norm-eps``) leave that so at their defaults; changed, they are BERT's.
"""
import logging
from typing import Optional

from torch import Tensor, nn
from fairseq.models import register_model, register_model_architecture
from fairseq.models.roberta import RobertaEncoder, RobertaModel
from fairseq.models.roberta.model import roberta_base_architecture, roberta_large_architecture
from fairseq.modules.transformer_sentence_encoder import init_bert_params
from fairseq.utils import safe_hasattr

from ..flags import (add_bert_args, add_token_drop_args, check_task_feeds_importance, check_token_drop_args,
                     keep_schedule, load_init_scores, random_ltd_layers, set_model_defaults, symbol_ids)
from ..method.activation_checkpointing import add_activation_checkpointing_args, set_activation_checkpointing_defaults
from ..method.importance import TokenImportance
from ..errors import CheckpointMismatch
from ..method.random_ltd import LayerwiseKeep, draw_kept, layer_slots
from ..method.token_dropping_encoder import TokenDroppingTransformerEncoder
from ..method.token_selection import num_kept, select_kept

logger = logging.getLogger(__name__)


@register_model("tokendrop_roberta")
class TokenDropRobertaModel(RobertaModel):
    num_updates = 0

    @staticmethod
    def add_args(parser):
        RobertaModel.add_args(parser)
        add_token_drop_args(parser)
        add_bert_args(parser)
        add_activation_checkpointing_args(parser)

    @classmethod
    def build_model(cls, args, task):
        from omegaconf import OmegaConf

        if OmegaConf.is_config(args):
            OmegaConf.set_struct(args, False)
        tokendrop_roberta_base(args)
        if not safe_hasattr(args, "max_positions"):
            if not safe_hasattr(args, "tokens_per_sample"):
                args.tokens_per_sample = task.max_positions()
            args.max_positions = args.tokens_per_sample
        check_token_drop_args(args, task.source_dictionary)
        check_task_feeds_importance(args, task)
        encoder = TokenDropRobertaEncoder(args, task.source_dictionary)
        set_layer_norm_eps(encoder, args.layer_norm_eps)
        if args.checkpoint_activations:
            logger.info(f"activation checkpointing: {args.encoder_layers} layers recomputed in the backward "
                        f"(non-reentrant{', inputs offloaded to CPU' if args.offload_activations else ''})")
        if OmegaConf.is_config(args):
            OmegaConf.set_struct(args, True)
        return cls(args, encoder)

    @property
    def token_importance(self) -> TokenImportance:
        return self.encoder.token_importance

    def set_num_updates(self, num_updates):
        self.num_updates = num_updates
        super().set_num_updates(num_updates)

    def upgrade_state_dict_named(self, state_dict, name):
        """RoBERTa's upgrades, then a vocabulary check before the strict load.

        A data-bin whose dict.txt is not the checkpoint's would otherwise stop
        in torch's size-mismatch report of every vocabulary-shaped tensor.
        """
        super().upgrade_state_dict_named(state_dict, name)
        key = (name + "." if name else "") + "encoder.sentence_encoder.embed_tokens.weight"
        ours = self.encoder.sentence_encoder.embed_tokens.num_embeddings
        if key in state_dict and state_dict[key].size(0) != ours:
            raise CheckpointMismatch(
                f"the checkpoint's vocabulary has {state_dict[key].size(0)} entries ({key}) but the "
                f"dictionary has {ours}: use the dict.txt of the data the checkpoint was trained on")


def set_layer_norm_eps(module: nn.Module, eps: float) -> None:
    """Every LayerNorm's epsilon (fairseq builds them all with 1e-5 and no option; BERT uses 1e-12).

    fairseq's ``LayerNorm`` gives torch's or, with apex, apex's fused one: both read ``eps`` per call.
    """
    for m in module.modules():
        if "LayerNorm" in type(m).__name__ and hasattr(m, "eps"):
            m.eps = eps


class TokenDropRobertaEncoder(RobertaEncoder):
    num_updates = 0  # set by fairseq before every micro-batch; the schedule reads it

    def __init__(self, args, dictionary):
        super().__init__(args, dictionary)
        self.drop_fraction = args.token_drop
        self.keep_k = args.token_keep_k
        self.keep_schedule = keep_schedule(args)
        self.strategy = args.token_drop_strategy
        self.random_ltd_layers = random_ltd_layers(args) if self.strategy == "random-ltd" else None
        init = args.init_token_importance
        self.token_importance = TokenImportance(
            len(dictionary),
            init_value=args.token_importance_init,
            beta=args.token_importance_beta,
            allow_ids=symbol_ids("--token-allow-list", args.token_allow_list, dictionary),
            deny_ids=symbol_ids("--token-deny-list", args.token_deny_list, dictionary),
            init_scores=load_init_scores(init, len(dictionary)) if init else None,
            seed=getattr(args, "seed", 1),  # the random strategy's noise (fairseq-train always sets it)
        )

    def build_encoder(self, args, dictionary, embed_tokens):
        encoder = TokenDroppingTransformerEncoder(args, dictionary, embed_tokens)
        encoder.apply(init_bert_params)
        return encoder

    def set_num_updates(self, num_updates):
        self.num_updates = num_updates
        super().set_num_updates(num_updates)

    def kept_length(self, seq_len: int) -> int:
        """Tokens per sequence of padded length ``seq_len`` that the dropping layers see this update
        in training (``seq_len``: no dropping)."""
        if self.keep_schedule is not None:
            return min(self.keep_schedule.kept(self.num_updates), seq_len)
        return num_kept(seq_len, self.drop_fraction, self.keep_k)

    def keep_index(self, src_tokens: Tensor) -> Optional[Tensor]:
        """``[B, K]`` positions the middle layers see, or None for all of them (token-dropping layout)."""
        k = self.kept_length(src_tokens.size(1))
        if not self.training or k >= src_tokens.size(1):
            return None
        if self.strategy == "random":
            scores = self.token_importance.random_scores(src_tokens)
        else:
            scores = self.token_importance.position_scores(src_tokens)
        return select_kept(scores, k)

    def layerwise_keep(self, src_tokens: Tensor) -> Optional[LayerwiseKeep]:
        """Random-LTD's positions for every wrapped layer of this forward, or None for all tokens."""
        k = self.kept_length(src_tokens.size(1))
        if not self.training or k >= src_tokens.size(1):
            return None
        generator = self.token_importance.micro_batch_generator(src_tokens.device)
        index = draw_kept(generator, src_tokens.eq(self.sentence_encoder.padding_idx), len(self.random_ltd_layers), k)
        return LayerwiseKeep(layer_slots(len(self.sentence_encoder.layers), self.random_ltd_layers), index)

    def forward(self, src_tokens, features_only=False, return_all_hiddens=False,
                masked_tokens=None, drop_tokens=True, segment_labels=None, **unused):
        """As ``RobertaEncoder.forward``; ``drop_tokens=False`` forces a full pass.

        ``segment_labels`` ``[B, T]``: the segment of each token, for a model
        with ``--num-segment`` (None: all segment 0; ignored without it).

        The extra dict adds ``features`` ``[B, T, C]`` (the encoder output
        before the LM head), ``last_layer_input`` ``[B, T, C]`` (None in eval) and the token
        counts ``kept_tokens`` / ``tokens`` (non-padding).
        """
        keep = layerwise = None
        if drop_tokens and self.strategy == "random-ltd":
            layerwise = self.layerwise_keep(src_tokens)
        elif drop_tokens:
            keep = self.keep_index(src_tokens)
        out = self.sentence_encoder(src_tokens, return_all_hiddens=return_all_hiddens, keep_index=keep,
                                    segment_labels=segment_labels, layerwise=layerwise)
        x = out["encoder_out"][0].transpose(0, 1)
        extra = {
            "inner_states": out["encoder_states"] if return_all_hiddens else None,
            "features": x,
            "last_layer_input": None if out["last_layer_input"] is None else out["last_layer_input"].transpose(0, 1),
            "kept_tokens": (~out["kept_padding_mask"]).sum(),
            "tokens": (~out["encoder_padding_mask"][0]).sum(),
        }
        if not features_only:
            x = self.output_layer(x, masked_tokens=masked_tokens)
        return x, extra


# the arch named after the model, as stock fairseq has "roberta" for its "roberta"
# (and hydra's model._name=tokendrop_roberta needs it)
@register_model_architecture("tokendrop_roberta", "tokendrop_roberta")
@register_model_architecture("tokendrop_roberta", "tokendrop_roberta_base")
def tokendrop_roberta_base(args):
    set_model_defaults(args)
    set_activation_checkpointing_defaults(args)
    roberta_base_architecture(args)


@register_model_architecture("tokendrop_roberta", "tokendrop_roberta_large")
def tokendrop_roberta_large(args):
    set_model_defaults(args)
    set_activation_checkpointing_defaults(args)
    roberta_large_architecture(args)
