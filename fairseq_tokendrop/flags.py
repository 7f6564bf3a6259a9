"""The model's token-dropping flags: declaration, defaults and startup checks.

Defaults follow TF Model Garden's token-dropping BERT (beta 0.995, init 10.0,
allow [UNK] [CLS] [SEP] [MASK], deny [PAD]), in fairseq's symbols.
"""
import math
from typing import List, Optional, Tuple

import torch
from fairseq.utils import safe_getattr

from .checkpoints.saved_scores import score_vector
from .errors import FlagError
from .method.importance import PIN
from .method.keep_schedule import FORMAT, KeepSchedule, parse_keep_schedule
from .method.random_ltd import parse_layers
from .method.token_dropping_encoder import MIN_LAYERS

FAIRSEQ_LAYER_NORM_EPS = 1e-5  # what fairseq.modules.LayerNorm builds

STRATEGIES = ("importance", "random", "random-ltd")


def add_token_drop_args(parser) -> None:
    parser.add_argument("--token-drop", type=float, metavar="P",
                        help="drop floor(P*T) tokens of each padded length-T sequence in the "
                             "middle layers (ScTD's flag); P in [0, 1), 0 = no dropping")
    parser.add_argument("--token-keep-k", type=int, metavar="K",
                        help="keep min(K, T) tokens in the middle layers (TF's token_keep_k); "
                             "0 = no dropping")
    parser.add_argument("--token-keep-schedule", metavar=FORMAT,
                        help="keep a number of tokens that grows with the update count, random-LTD's "
                             "schedule (DeepSpeed's fixed_linear): v = floor(step/REQUIRE_STEPS*(MAX-MIN)+MIN), "
                             "v -= v %% SEQ_PER_STEP, kept = min(v, MAX); no dropping once kept >= T. "
                             "Give at most one of --token-drop/--token-keep-k/--token-keep-schedule")
    parser.add_argument("--token-drop-strategy", choices=STRATEGIES,
                        help="importance: keep the highest moving-average MLM losses per "
                             "vocabulary id (Hou et al. 2022); random: random selection in the "
                             "token-dropping layout (one uniform subset through all middle layers); "
                             "random-ltd: random-LTD (Yao et al. 2022), a fresh uniform subset for "
                             "every wrapped layer, the others skip it")
    parser.add_argument("--random-ltd-layers", metavar="IDS",
                        help="random-ltd: comma-separated ids of the layers that drop tokens "
                             "(DeepSpeed's random_ltd_layer_id); default every layer but the first and last")
    parser.add_argument("--token-allow-list", metavar="SYMS",
                        help="comma-separated dictionary symbols that are always kept")
    parser.add_argument("--token-deny-list", metavar="SYMS",
                        help="comma-separated dictionary symbols that are dropped first")
    parser.add_argument("--token-importance-init", type=float, metavar="S",
                        help="initial importance score of every vocabulary id")
    parser.add_argument("--token-importance-beta", type=float, metavar="B",
                        help="moving-average factor: score <- B*score + (1-B)*loss "
                             "(0.995 in TF, 0.95 in ScTD)")
    parser.add_argument("--init-token-importance", metavar="FILE",
                        help="start from saved scores: a float tensor [len(dictionary)] "
                             "written with torch.save")


def add_bert_args(parser) -> None:
    """What a BERT checkpoint has that fairseq's RoBERTa lacks; the defaults keep RoBERTa exactly stock."""
    parser.add_argument("--num-segment", type=int, metavar="N",
                        help="segment (token type) embeddings, as BERT's type_vocab_size: 2 reads "
                             "pre-masked data's segment_ids; 0 (default) = none, exactly stock RoBERTa")
    parser.add_argument("--layer-norm-eps", type=float, metavar="EPS",
                        help="epsilon of every LayerNorm (default 1e-5, fairseq's; BERT and TF use 1e-12)")


def set_model_defaults(args) -> None:
    args.token_drop = safe_getattr(args, "token_drop", 0.0)
    args.token_keep_k = safe_getattr(args, "token_keep_k", 0)
    args.token_keep_schedule = safe_getattr(args, "token_keep_schedule", None)
    args.random_ltd_layers = safe_getattr(args, "random_ltd_layers", None)
    args.token_drop_strategy = safe_getattr(args, "token_drop_strategy", "importance")
    args.token_allow_list = safe_getattr(args, "token_allow_list", "<s>,</s>,<unk>,<mask>")
    args.token_deny_list = safe_getattr(args, "token_deny_list", "<pad>")
    args.token_importance_init = safe_getattr(args, "token_importance_init", 10.0)
    args.token_importance_beta = safe_getattr(args, "token_importance_beta", 0.995)
    args.init_token_importance = safe_getattr(args, "init_token_importance", None)
    args.num_segment = safe_getattr(args, "num_segment", 0)
    args.layer_norm_eps = safe_getattr(args, "layer_norm_eps", FAIRSEQ_LAYER_NORM_EPS)


def symbol_ids(flag: str, symbols: str, dictionary) -> List[int]:
    ids = []
    for symbol in (s.strip() for s in (symbols or "").split(",")):
        if not symbol:
            continue
        if symbol not in dictionary.indices:
            raise FlagError(f"{flag}: symbol {symbol!r} is not in the dictionary")
        ids.append(dictionary.indices[symbol])
    return ids


def sequence_length(args) -> int:
    """The padded length the schedule must fit: --tokens-per-sample (the model's max positions without it)."""
    return safe_getattr(args, "tokens_per_sample", None) or args.max_positions


def comma_list(value) -> Optional[str]:
    """A comma-separated flag value as text; hydra gives ``key=[8,32,4,4]`` as a list."""
    if value is None or isinstance(value, str):
        return value
    return ",".join(str(v) for v in value)


def keep_schedule(args) -> Optional[KeepSchedule]:
    """The parsed --token-keep-schedule, or None."""
    text = comma_list(args.token_keep_schedule)
    if not text:
        return None
    try:
        return parse_keep_schedule(text, sequence_length(args))
    except ValueError as e:
        raise FlagError(f"--token-keep-schedule {text}: {e}")


def random_ltd_layers(args) -> Tuple[int, ...]:
    """The layers random-LTD wraps (--random-ltd-layers, or every layer but the first and last)."""
    text = comma_list(args.random_ltd_layers)
    try:
        return parse_layers(text, args.encoder_layers)
    except ValueError as e:
        raise FlagError(f"--random-ltd-layers {text}: {e}")


def drops_tokens(args) -> bool:
    """True when a tokendrop_roberta's flags ask for dropping (a schedule may still keep every token)."""
    return (safe_getattr(args, "token_drop", 0.0) > 0 or safe_getattr(args, "token_keep_k", 0) > 0
            or bool(safe_getattr(args, "token_keep_schedule", None)))


def check_token_drop_args(args, dictionary) -> None:
    """Raise FlagError for the first bad value, naming its flag."""
    if not 0.0 <= args.token_drop < 1.0:
        raise FlagError(f"--token-drop must be in [0, 1), got {args.token_drop}")
    if args.num_segment < 0:
        raise FlagError(f"--num-segment must be >= 0, got {args.num_segment}")
    if not 0 < args.layer_norm_eps < 1:
        raise FlagError(f"--layer-norm-eps must be in (0, 1), got {args.layer_norm_eps}")
    if args.token_keep_k < 0:
        raise FlagError(f"--token-keep-k must be >= 0, got {args.token_keep_k}")
    given = [flag for flag, on in (("--token-drop", args.token_drop > 0), ("--token-keep-k", args.token_keep_k > 0),
                                   ("--token-keep-schedule", bool(args.token_keep_schedule))) if on]
    if len(given) > 1:
        raise FlagError("give at most one of --token-drop, --token-keep-k and --token-keep-schedule, "
                        f"got {' and '.join(given)}")
    keep_schedule(args)
    dropping = drops_tokens(args)
    if args.token_drop_strategy not in STRATEGIES:
        raise FlagError(f"--token-drop-strategy must be one of {STRATEGIES}, got {args.token_drop_strategy!r}")
    if args.random_ltd_layers and args.token_drop_strategy != "random-ltd":
        raise FlagError(f"--random-ltd-layers applies to --token-drop-strategy random-ltd only, "
                        f"got --token-drop-strategy {args.token_drop_strategy}")
    if args.token_drop_strategy == "random-ltd":
        random_ltd_layers(args)
    if not 0.0 <= args.token_importance_beta < 1.0:
        raise FlagError(f"--token-importance-beta must be in [0, 1), got {args.token_importance_beta}")
    if not -PIN < args.token_importance_init < PIN:  # the pins must stay the extremes; NaN fails too
        raise FlagError(f"--token-importance-init must be in (-{PIN:g}, {PIN:g}), the allow/deny pins, "
                        f"got {args.token_importance_init}")
    if dropping and args.encoder_layers < MIN_LAYERS:
        raise FlagError(f"--encoder-layers must be >= {MIN_LAYERS} for token dropping, got {args.encoder_layers}")
    if dropping and safe_getattr(args, "encoder_layerdrop", 0.0) > 0:
        raise FlagError("--encoder-layerdrop cannot be combined with token dropping")
    both = set(symbol_ids("--token-allow-list", args.token_allow_list, dictionary)) & set(
        symbol_ids("--token-deny-list", args.token_deny_list, dictionary))
    if both:
        raise FlagError(f"--token-deny-list: {dictionary[min(both)]!r} is also in --token-allow-list")


def drops_by_importance(args) -> bool:
    """True for a tokendrop_roberta that drops by importance; False for any other model's args."""
    return drops_tokens(args) and safe_getattr(args, "token_drop_strategy", None) == "importance"


FROZEN = ("every score would stay at its initial value and dropping would keep the first positions "
          "of each sequence (--token-drop-strategy random or random-ltd drops without importance)")


def check_task_feeds_importance(args, task) -> None:
    """Refuse importance dropping under a task that never applies the importance update."""
    if drops_by_importance(args) and not getattr(task, "feeds_token_importance", False):
        name = safe_getattr(getattr(task, "cfg", None), "_name", type(task).__name__)
        raise FlagError(f"--task {name} never updates token importance: use --task masked_lm_tokendrop, "
                        f"or {FROZEN}")


def check_criterion_feeds_importance(model_args, criterion_name: str, feeds: bool) -> None:
    """Refuse importance dropping with a criterion that never hands the tracker its losses."""
    if drops_by_importance(model_args) and not feeds:
        raise FlagError(f"--criterion {criterion_name} never updates token importance: use "
                        f"--criterion masked_lm_tokendrop, or {FROZEN}")


def check_ddp_backend(ddp_backend: str) -> None:
    """Refuse ``--ddp-backend fully_sharded`` at startup.

    fairscale's FSDP (CUDA only) was never run with this plugin: whether the
    importance scores (``state_dict._metadata``) survive its sharded and
    consolidated state dicts is untested, so it is refused rather than trusted.
    (The cross-attention layer runs inside its layer's forward, so FSDP's
    per-layer wrapping would cover it as it covers the others.)
    """
    if ddp_backend == "fully_sharded":
        raise FlagError("--ddp-backend fully_sharded is not supported by --task masked_lm_tokendrop (never run: "
                        "fairscale's FSDP needs CUDA); use --ddp-backend c10d (the default), pytorch_ddp or legacy_ddp")


def check_sctd_args(cfg) -> None:
    """The criterion's flags (``masked_lm_tokendrop``); raise FlagError for the first bad one."""
    if cfg.sctd_interval < 0:
        raise FlagError(f"--sctd-interval must be >= 0, got {cfg.sctd_interval}")
    if not 0.0 <= cfg.sctd_full_weight <= 1.0:
        raise FlagError(f"--sctd-full-weight must be in [0, 1], got {cfg.sctd_full_weight}")
    if not 0.0 <= cfg.sctd_kl_weight < math.inf:
        raise FlagError(f"--sctd-kl-weight must be finite and >= 0, got {cfg.sctd_kl_weight}")


def load_init_scores(path: str, vocab_size: int) -> torch.Tensor:
    flag = "--init-token-importance"
    try:
        scores = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise FlagError(f"{flag}: no such file: {path}")
    except Exception as e:
        raise FlagError(f"{flag}: cannot read {path} as a saved tensor ({type(e).__name__}: {e})")
    vector = score_vector(scores, vocab_size)  # ours [V], or the ScTD fork's [V, 1]
    if vector is None:
        shape = tuple(scores.shape) if torch.is_tensor(scores) else type(scores).__name__
        raise FlagError(f"{flag}: {path} holds {shape}, expected a float tensor of shape "
                        f"({vocab_size},) (or the ScTD fork's ({vocab_size}, 1)), one score per dictionary entry")
    scores = vector
    if not torch.isfinite(scores).all():
        bad = int((~torch.isfinite(scores)).nonzero()[0])
        raise FlagError(f"{flag}: {path} holds a non-finite score (entry {bad}: {scores[bad].item()})")
    return scores
