"""RoBERTa whose middle layers see only some of the tokens while training.

The encoder asks its strategy (``method/strategies.py``: importance, random,
random-LTD; none for stock RoBERTa) once per training forward which tokens each
layer sees, and runs its layers on that plan. The number kept is fixed
(``--token-drop``/``--token-keep-k``) or follows the update count
(``--token-keep-schedule``, ``keep_schedule.py``). The flags are declared and
checked in ``tokendrop_config.py``.

A ``RobertaModel`` in every other respect: same parameters and state-dict
keys, so a checkpoint loads into stock ``--arch roberta_base``; in eval mode it
is exactly RoBERTa over all tokens. The BERT options (``--num-segment``,
``--layer-norm-eps``) leave that so at their defaults; changed, they are BERT's.
"""
import logging
from typing import Optional, Tuple, Union

from torch import Tensor, nn
from fairseq.models import register_model, register_model_architecture
from fairseq.models.roberta import RobertaEncoder, RobertaModel
from fairseq.models.roberta.model import roberta_base_architecture, roberta_large_architecture
from fairseq.modules.transformer_sentence_encoder import init_bert_params
from fairseq.utils import safe_getattr, safe_hasattr

from ..checkpoints.scores_in_state_dict import keep_scores_in_state_dict
from ..errors import TokendropError
from ..checkpoints.saved_scores import load_init_scores
from ..method.importance import TokenImportance
from ..method.layer_plans import LayerwisePlan, TokenDroppingPlan
from ..method.strategies import WITHOUT_UPDATES
from ..method.token_dropping_encoder import TokenDroppingTransformerEncoder
from ..method.token_selection import num_kept
from .tokendrop_config import (add_tokendrop_args, build_strategy, keep_schedule, never_drops, pin_ids, set_defaults,
                               validate)

logger = logging.getLogger(__name__)


@register_model("tokendrop_roberta")
class TokenDropRobertaModel(RobertaModel):
    @staticmethod
    def add_args(parser):
        RobertaModel.add_args(parser)
        add_tokendrop_args(parser)

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
        validate(args, task.source_dictionary, training=not getattr(task, "loading_checkpoint", False))
        encoder = TokenDropRobertaEncoder(args, task.source_dictionary)
        if encoder.strategy is not None and encoder.strategy.moves_importance and not getattr(
                task, "feeds_token_importance", False):
            name = safe_getattr(getattr(task, "cfg", None), "_name", type(task).__name__)
            raise TokendropError(f"--task {name} never updates token importance: use --task masked_lm_tokendrop, "
                            f"or {WITHOUT_UPDATES}")
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

    @property
    def num_updates(self) -> int:
        """fairseq's update count, kept by the encoder (``set_num_updates`` reaches it before every micro-batch)."""
        return self.encoder.num_updates

    @property
    def never_drops(self) -> Optional[str]:
        """Why no training update of this model drops a token, or None when some update does."""
        return never_drops(self.args)

    @property
    def needs_importance_updates(self) -> bool:
        """True when the model drops by importance, so the scores it selects by must move."""
        return self.encoder.strategy is not None and self.encoder.strategy.moves_importance

    def upgrade_state_dict_named(self, state_dict, name):
        """RoBERTa's upgrades, then a vocabulary check before the strict load.

        A data-bin whose dict.txt is not the checkpoint's would otherwise stop
        in torch's size-mismatch report of every vocabulary-shaped tensor.
        """
        super().upgrade_state_dict_named(state_dict, name)
        key = (name + "." if name else "") + "encoder.sentence_encoder.embed_tokens.weight"
        ours = self.encoder.sentence_encoder.embed_tokens.num_embeddings
        if key in state_dict and state_dict[key].size(0) != ours:
            raise TokendropError(
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
    num_updates = 0  # set by fairseq before every micro-batch: the schedule and the noise read it
    kept_tally = None  # counts what the plans keep, under --tensorboard-logdir (training/tensorboard_view.py)

    def __init__(self, args, dictionary):
        super().__init__(args, dictionary)
        self.drop_fraction = args.token_drop
        self.keep_k = args.token_keep_k
        self.keep_schedule = keep_schedule(args)
        init = args.init_token_importance
        allow_ids, deny_ids = pin_ids(args, dictionary)
        self.token_importance = TokenImportance(
            len(dictionary),
            init_value=args.token_importance_init,
            beta=args.token_importance_beta,
            allow_ids=allow_ids,
            deny_ids=deny_ids,
            init_scores=load_init_scores(init, len(dictionary)) if init else None,
            symbols=dictionary.symbols,
        )
        keep_scores_in_state_dict(self.token_importance)
        self.strategy = build_strategy(args, self.token_importance, dictionary.pad())

    @property
    def layerwise_layers(self) -> Optional[Tuple[int, ...]]:
        """The layers random-LTD wraps, or None for the token-dropping layout and stock RoBERTa."""
        return getattr(self.strategy, "layerwise_layers", None)

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

    def plan(self, src_tokens: Tensor) -> Union[TokenDroppingPlan, LayerwisePlan, None]:
        """Which tokens each layer sees in this forward (the strategy's plan), or None for all of them."""
        k = self.kept_length(src_tokens.size(1))
        if self.strategy is None or not self.training or k >= src_tokens.size(1):
            return None
        return self.strategy.plan(src_tokens, k, self.num_updates)

    def forward(self, src_tokens, features_only=False, return_all_hiddens=False,
                masked_tokens=None, drop_tokens=True, segment_labels=None, **unused):
        """As ``RobertaEncoder.forward``; ``drop_tokens=False`` forces a full pass.

        ``segment_labels`` ``[B, T]``: the segment of each token, for a model
        with ``--num-segment`` (None: all segment 0; ignored without it).

        The extra dict adds ``features`` ``[B, T, C]`` (the encoder output
        before the LM head), ``last_layer_input`` ``[B, T, C]`` (the output of
        layer N-2, what ScTD's local loss compares; None in eval mode without
        ``return_all_hiddens``) and the token counts ``kept_tokens`` (those the
        middle layers saw) / ``tokens`` (non-padding).
        """
        plan = self.plan(src_tokens) if drop_tokens else None
        if plan is not None and self.kept_tally is not None and self.token_importance.collecting:
            self.kept_tally.add(src_tokens, plan)  # not a dummy batch's
        out = self.sentence_encoder(src_tokens, return_all_hiddens=return_all_hiddens,
                                    segment_labels=segment_labels, plan=plan)
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
    set_defaults(args)
    roberta_base_architecture(args)


@register_model_architecture("tokendrop_roberta", "tokendrop_roberta_large")
def tokendrop_roberta_large(args):
    set_defaults(args)
    roberta_large_architecture(args)
