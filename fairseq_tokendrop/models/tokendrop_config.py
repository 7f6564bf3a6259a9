"""The model's token-dropping and BERT flags: declared with their defaults, checked in one place.

Defaults follow TF Model Garden's token-dropping BERT (beta 0.995, init 10.0,
allow [UNK] [CLS] [SEP] [MASK], deny [PAD]), in fairseq's symbols; random-LTD pins
nothing, as in DeepSpeed, whose draw is uniform over every position. RoBERTa
declares its own flags the legacy way (``RobertaModel.add_args``), so the
model is registered without a dataclass; these fields become its extra flags
(``add_tokendrop_args``) and, through the arch, the defaults of a namespace or hydra
config that lacks them (``set_defaults``). The CLI names are the fields'
names with '-' for '_', and the hydra keys the fields' names.
"""
from dataclasses import dataclass, field, fields
from typing import List, Optional, Tuple

from fairseq.dataclass import ChoiceEnum, FairseqDataclass
from fairseq.dataclass.utils import gen_parser_from_dataclass
from fairseq.utils import safe_getattr

from ..errors import TokendropError
from ..method.importance import TokenImportance
from ..method.keep_schedule import FORMAT, KeepSchedule, parse_keep_schedule
from ..method.noise import MicroBatchNoise
from ..method.pins import PIN
from ..method.random_ltd import parse_layers
from ..method.strategies import ImportanceDropping, RandomDropping, RandomLtd
from ..method.token_dropping_encoder import MIN_LAYERS
from ..method.token_selection import num_kept

FAIRSEQ_LAYER_NORM_EPS = 1e-5  # what fairseq.modules.LayerNorm builds

STRATEGIES = ("importance", "random", "random-ltd")
# Each strategy's (allow, deny) symbols when --token-allow-list/--token-deny-list are not given:
# TF Model Garden's for the two that select in the token-dropping layout; none for random-LTD,
# which draws uniformly (Yao et al. 2022 need no special-token treatment) and refuses the lists.
DEFAULT_PINS = {"importance": ("<s>,</s>,<unk>,<mask>", "<pad>"), "random": ("<s>,</s>,<unk>,<mask>", "<pad>"),
                "random-ltd": ("", "")}


@dataclass
class TokenDropConfig(FairseqDataclass):
    token_drop: float = field(default=0.0, metadata={
        "help": "drop floor(P*T) tokens of each padded length-T sequence in the middle layers (ScTD's flag); "
                "P in [0, 1), 0 = no dropping"})
    token_keep_k: int = field(default=0, metadata={
        "help": "keep min(K, T) tokens in the middle layers (TF's token_keep_k); 0 = no dropping"})
    token_keep_schedule: Optional[str] = field(default=None, metadata={
        "help": f"{FORMAT}: keep a number of tokens that grows with the update count, random-LTD's schedule "
                "(DeepSpeed's fixed_linear): v = floor(step/REQUIRE_STEPS*(MAX-MIN)+MIN), v -= v %% SEQ_PER_STEP, "
                "kept = min(v, MAX); no dropping once kept >= T. Give at most one of "
                "--token-drop/--token-keep-k/--token-keep-schedule"})
    token_drop_strategy: ChoiceEnum(STRATEGIES) = field(default="importance", metadata={
        "help": "importance: keep the highest moving-average MLM losses per vocabulary id (Hou et al. 2022); "
                "random: random selection in the token-dropping layout (one uniform subset through all middle "
                "layers); random-ltd: random-LTD (Yao et al. 2022), a fresh uniform subset for every wrapped "
                "layer, the others skip it"})
    random_ltd_layers: Optional[str] = field(default=None, metadata={
        "help": "random-ltd: comma-separated ids of the layers that drop tokens (DeepSpeed's random_ltd_layer_id); "
                "default every layer but the first and last"})
    token_allow_list: Optional[str] = field(default=None, metadata={
        "help": "comma-separated dictionary symbols that are always kept; default <s>,</s>,<unk>,<mask> "
                "(TF Model Garden's); not for random-ltd, whose draw is uniform"})
    token_deny_list: Optional[str] = field(default=None, metadata={
        "help": "comma-separated dictionary symbols that are dropped first; default <pad>; not for random-ltd"})
    token_importance_init: float = field(default=10.0, metadata={
        "help": "initial importance score of every vocabulary id"})
    token_importance_beta: float = field(default=0.995, metadata={
        "help": "moving-average factor: score <- B*score + (1-B)*loss (0.995 in TF, 0.95 in ScTD)"})
    init_token_importance: Optional[str] = field(default=None, metadata={
        "help": "start from saved scores: a float tensor [len(dictionary)] written with torch.save"})
    # What a BERT checkpoint has that fairseq's RoBERTa lacks; the defaults keep RoBERTa exactly stock.
    num_segment: int = field(default=0, metadata={
        "help": "segment (token type) embeddings, as BERT's type_vocab_size: 2 reads pre-masked data's "
                "segment_ids; 0 (default) = none, exactly stock RoBERTa"})
    layer_norm_eps: float = field(default=FAIRSEQ_LAYER_NORM_EPS, metadata={
        "help": "epsilon of every LayerNorm (default 1e-5, fairseq's; BERT and TF use 1e-12)"})
    # fairseq's transformer flags, which RoBERTa's parser lacks (activation_checkpointing.py)
    checkpoint_activations: bool = field(default=False, metadata={
        "help": "checkpoint activations at each layer: keep each layer's input and recompute the layer in "
                "the backward (less memory, one more forward)"})
    offload_activations: bool = field(default=False, metadata={
        "help": "checkpoint activations at each layer and keep the layer inputs in CPU memory; sets "
                "--checkpoint-activations"})


def add_tokendrop_args(parser) -> None:
    # no argparse defaults: set_defaults fills what a namespace lacks, so the arch sees what was given
    gen_parser_from_dataclass(parser, TokenDropConfig(), delete_default=True)


def set_defaults(args) -> None:
    """Every field ``args`` (a namespace or hydra config) lacks gets its default."""
    for f in fields(TokenDropConfig):
        setattr(args, f.name, safe_getattr(args, f.name, f.default))
    # offloading implies checkpointing, as in fairseq's transformer
    args.checkpoint_activations = args.checkpoint_activations or args.offload_activations


def symbol_ids(flag: str, symbols: str, dictionary) -> List[int]:
    ids = []
    for symbol in (s.strip() for s in (symbols or "").split(",")):
        if not symbol:
            continue
        if symbol not in dictionary.indices:
            raise TokendropError(f"{flag}: symbol {symbol!r} is not in the dictionary")
        ids.append(dictionary.indices[symbol])
    return ids


def pin_symbols(args) -> Tuple[str, str]:
    """The (allow, deny) symbols in force: the flags where given, else the strategy's defaults."""
    allow, deny = DEFAULT_PINS[args.token_drop_strategy]
    return (allow if args.token_allow_list is None else args.token_allow_list,
            deny if args.token_deny_list is None else args.token_deny_list)


def pin_ids(args, dictionary) -> Tuple[List[int], List[int]]:
    """The (allow, deny) dictionary ids in force."""
    allow, deny = pin_symbols(args)
    return symbol_ids("--token-allow-list", allow, dictionary), symbol_ids("--token-deny-list", deny, dictionary)


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
        raise TokendropError(f"--token-keep-schedule {text}: {e}")


def random_ltd_layers(args) -> Tuple[int, ...]:
    """The layers random-LTD wraps (--random-ltd-layers, or every layer but the first and last)."""
    text = comma_list(args.random_ltd_layers)
    try:
        return parse_layers(text, args.encoder_layers)
    except ValueError as e:
        raise TokendropError(f"--random-ltd-layers {text}: {e}")


def drops_tokens(args) -> bool:
    """True when the flags ask for dropping (a schedule may still keep every token at some update)."""
    return args.token_drop > 0 or args.token_keep_k > 0 or bool(args.token_keep_schedule)


def never_drops(args) -> Optional[str]:
    """Why no update ever drops a token under these flags, or None when some update does.

    A batch is at most --tokens-per-sample long (T), and a layer skips dropping when it would keep
    all of a batch (``kept_length``); a schedule's MAX is at most T and its MIN below MAX, so a
    schedule always drops at first.
    """
    length = sequence_length(args)
    if not drops_tokens(args):
        return "none of --token-drop, --token-keep-k and --token-keep-schedule is given"
    if args.token_keep_k >= length:
        return f"--token-keep-k {args.token_keep_k} keeps every token of --tokens-per-sample {length}"
    if args.token_drop > 0 and num_kept(length, args.token_drop, 0) == length:
        return (f"--token-drop {args.token_drop} drops floor({args.token_drop}*{length}) = 0 of --tokens-per-sample "
                f"{length}")
    return None


def validate(args, dictionary, training: bool = True) -> None:
    """Raise TokendropError for the first bad value, naming its flag.

    ``training=False`` (a saved model loaded to evaluate, export or inspect) skips what matters only to
    training: a checkpoint written before a check existed still loads.
    """
    if not 0.0 <= args.token_drop < 1.0:
        raise TokendropError(f"--token-drop must be in [0, 1), got {args.token_drop}")
    if args.num_segment < 0:
        raise TokendropError(f"--num-segment must be >= 0, got {args.num_segment}")
    if not 0 < args.layer_norm_eps < 1:
        raise TokendropError(f"--layer-norm-eps must be in (0, 1), got {args.layer_norm_eps}")
    if args.token_keep_k < 0:
        raise TokendropError(f"--token-keep-k must be >= 0, got {args.token_keep_k}")
    given = [flag for flag, on in (("--token-drop", args.token_drop > 0), ("--token-keep-k", args.token_keep_k > 0),
                                   ("--token-keep-schedule", bool(args.token_keep_schedule))) if on]
    if len(given) > 1:
        raise TokendropError("give at most one of --token-drop, --token-keep-k and --token-keep-schedule, "
                        f"got {' and '.join(given)}")
    keep_schedule(args)
    dropping = drops_tokens(args)
    if args.token_drop_strategy not in STRATEGIES:
        raise TokendropError(f"--token-drop-strategy must be one of {STRATEGIES}, got {args.token_drop_strategy!r}")
    if args.random_ltd_layers and args.token_drop_strategy != "random-ltd":
        raise TokendropError(f"--random-ltd-layers applies to --token-drop-strategy random-ltd only, "
                        f"got --token-drop-strategy {args.token_drop_strategy}")
    if args.token_drop_strategy == "random-ltd":
        random_ltd_layers(args)
        for flag, symbols in (("--token-allow-list", args.token_allow_list),
                              ("--token-deny-list", args.token_deny_list)):
            if symbols and training:  # older checkpoints carry the lists, which random-LTD never reads
                raise TokendropError(f"{flag} does not apply to --token-drop-strategy random-ltd, which draws "
                                     f"uniformly over every position as DeepSpeed does: leave {flag} unset")
    idle = never_drops(args) if args.token_drop_strategy != "importance" and training else None
    if idle:  # importance without dropping is the baseline, which still tracks the scores
        raise TokendropError(f"--token-drop-strategy {args.token_drop_strategy} never drops a token: {idle}, "
                             "so this would train stock RoBERTa")
    if not 0.0 <= args.token_importance_beta < 1.0:
        raise TokendropError(f"--token-importance-beta must be in [0, 1), got {args.token_importance_beta}")
    if not -PIN < args.token_importance_init < PIN:  # the pins must stay the extremes; NaN fails too
        raise TokendropError(f"--token-importance-init must be in (-{PIN:g}, {PIN:g}), the allow/deny pins, "
                        f"got {args.token_importance_init}")
    if dropping and args.encoder_layers < MIN_LAYERS:
        raise TokendropError(f"--encoder-layers must be >= {MIN_LAYERS} for token dropping, got {args.encoder_layers}")
    if dropping and safe_getattr(args, "encoder_layerdrop", 0.0) > 0:
        raise TokendropError("--encoder-layerdrop cannot be combined with token dropping")
    allow, deny = pin_ids(args, dictionary)
    both = set(allow) & set(deny)
    if both:
        raise TokendropError(f"--token-deny-list: {dictionary[min(both)]!r} is also in --token-allow-list")


def build_strategy(args, importance: TokenImportance, padding_idx: int):
    """The strategy the flags ask for (``method/strategies.py``), or None when nothing is ever dropped."""
    if never_drops(args):
        return None
    if args.token_drop_strategy == "importance":
        return ImportanceDropping(importance, args.encoder_layers, padding_idx)
    # the random strategies' noise: fairseq-train always sets --seed
    noise = MicroBatchNoise(safe_getattr(args, "seed", 1))
    if args.token_drop_strategy == "random":
        return RandomDropping(importance.pins, noise, args.encoder_layers, padding_idx)
    return RandomLtd(noise, random_ltd_layers(args), args.encoder_layers, padding_idx)


def describe(args, sctd_interval: int) -> str:
    """One line for the start-up log: what is dropped, how much, in which layers, what is pinned, and ScTD."""
    sctd = f"ScTD every {sctd_interval} updates" if sctd_interval else "no ScTD"
    if not drops_tokens(args):
        return f"token dropping: off (every layer sees every token); {sctd}"
    length = sequence_length(args)
    schedule = keep_schedule(args)
    if schedule is not None:
        kept = (f"{schedule.min_value} growing to {schedule.max_value} of {length} tokens kept over "
                f"{schedule.require_steps} updates (--token-keep-schedule {schedule})")
    else:
        flag = f"--token-keep-k {args.token_keep_k}" if args.token_keep_k else f"--token-drop {args.token_drop}"
        kept = f"{num_kept(length, args.token_drop, args.token_keep_k)} of {length} tokens kept ({flag})"
    last = args.encoder_layers - 1
    if args.token_drop_strategy == "random-ltd":
        layers = ",".join(map(str, random_ltd_layers(args)))
        where = f"layers {layers} of 0-{last} each draw their own"
        pins = "no pins (random-LTD draws among all tokens but padding)"
    else:
        split = args.encoder_layers // 2 - 1
        where = f"layers {split}-{last - 1} of 0-{last} see them (layer {split} attends from them to all)"
        allow, deny = pin_symbols(args)
        pins = f"always kept: {allow or 'none'}; dropped first: {deny or 'none'}"
    return f"token dropping: {args.token_drop_strategy}, {kept}; {where}; {pins}; {sctd}"
