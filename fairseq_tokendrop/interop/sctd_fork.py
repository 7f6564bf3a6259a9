"""Checkpoints and score files of the ScTD authors' fairseq fork (Zhong et al., ACL 2023).

The fork (github.com/WHU-ZQH/ScTD, ``fairseq-sctd/``) keeps its importance
scores in the model: a frozen ``nn.Embedding`` of shape ``[V, 1]`` at
``encoder.sentence_encoder.token_importance``, one state-dict key more than
RoBERTa's, so stock fairseq's strict load refuses its checkpoints. The other
keys are stock RoBERTa's, the cross-attention layer reusing layer N/2-1's
weights, as here. Its ``--init-token-importance`` file is a ``[V, 1]`` tensor.
Its cfg names fairseq's default criterion (``cross_entropy``, which the fork
patches) and task ``masked_lm``, and its schedule is hard-coded: ScTD every
10 updates, beta 0.95.
"""
from typing import Mapping, Tuple

import torch
from torch import Tensor

from ..checkpoints.saved_scores import score_vector
from ..errors import TokendropError

FORK_SCORES_KEY = "encoder.sentence_encoder.token_importance.weight"
# what the fork hard-codes, as this plugin's flags
FORK_SCHEDULE_FLAGS = ("--sctd-interval", "10", "--token-importance-beta", "0.95")


def split_fork_state(model_state: Mapping) -> Tuple[dict, Tensor]:
    """The fork's model state -> (RoBERTa's state dict, float32 ``[V]`` scores)."""
    if FORK_SCORES_KEY not in model_state:
        raise TokendropError(f"no {FORK_SCORES_KEY} in the checkpoint's model: not the ScTD fork's layout")
    state = {k: v for k, v in model_state.items() if k != FORK_SCORES_KEY}
    embed = state.get("encoder.sentence_encoder.embed_tokens.weight")
    vocab = embed.size(0) if embed is not None else model_state[FORK_SCORES_KEY].size(0)
    scores = score_vector(model_state[FORK_SCORES_KEY], vocab)
    if scores is None:
        raise TokendropError(f"{FORK_SCORES_KEY} has shape {tuple(model_state[FORK_SCORES_KEY].shape)}, "
                                  f"expected ({vocab}, 1), one score per dictionary entry")
    if not torch.isfinite(scores).all():
        raise TokendropError(f"{FORK_SCORES_KEY} holds non-finite scores")
    return state, scores


def fork_model_args(model_cfg) -> Tuple[str, dict]:
    """The fork's model cfg (an argparse Namespace or a dict) -> (our arch, its dimensions and dropping)."""
    get = model_cfg.get if isinstance(model_cfg, Mapping) else lambda k, d=None: getattr(model_cfg, k, d)
    arch = get("arch") or get("_name")
    if arch not in ("roberta_base", "roberta_large", "roberta"):
        raise TokendropError(f"cfg.model.arch is {arch!r}; the fork trains roberta_base/roberta_large")
    args = {key: get(key) for key in ("encoder_layers", "encoder_embed_dim", "encoder_ffn_embed_dim",
                                      "encoder_attention_heads", "max_positions", "activation_fn",
                                      "dropout", "attention_dropout")}
    missing = [key for key, value in args.items() if value is None]
    if missing:
        raise TokendropError(f"cfg.model lacks {', '.join(missing)}")
    args["token_drop"] = get("token_drop", 0.0) or 0.0
    return ("tokendrop_roberta_large" if arch == "roberta_large" else "tokendrop_roberta_base"), args
