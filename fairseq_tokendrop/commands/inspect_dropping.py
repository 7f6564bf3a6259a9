"""See what a token-dropping model drops: per sentence, the tokens its dropping layers keep and skip; its
importance ranking against corpus frequency; and how both move between checkpoints.

    fairseq-tokendrop-inspect checkpoints/checkpoint_last.pt --text sentences.txt --html drops.html
    fairseq-tokendrop-inspect checkpoints/checkpoint_last.pt --split valid --sentences 4
    fairseq-tokendrop-inspect ck/checkpoint_1_1000.pt ck/checkpoint_2_2000.pt ck/checkpoint_last.pt

The marks are the last checkpoint's, exactly as training selects at its update and kept length: the
model built from the checkpoint is asked for its plan (``inspection/marks.py``), so importance goes by
the stored scores and the pins, and random and random-LTD by the draws of the checkpoint's ``--seed``
(or ``--seed``), per wrapped layer for random-LTD. Text (``--text``, one sentence a line) is encoded
with the checkpoint's own vocabulary, found as ``fairseq-tokendrop-export`` finds it: ``vocab.txt``
in the data dir (or ``--vocab``) for WordPiece, else its sentencepiece model (or ``--spm-model``). A
split (``--split``) is what training reads: the task's blocks of ``--tokens-per-sample``, masked as
at epoch 1 (a pre-masked dir with its own masks).

Each checkpoint's scores come in through its own load (``checkpoints/safe_loading.py``); one without
scores gets a line saying so. Outputs: the terminal view (stdout), ``--html`` (one self-contained
page), ``--json``, and ``--png`` with matplotlib (``pip install .[research]``; without it, one line).
"""
import argparse
import importlib.util
import logging
import os
import shutil
import sys

from fairseq import checkpoint_utils
from fairseq.dataclass.utils import overwrite_args_by_name
from fairseq.utils import safe_getattr

import fairseq_tokendrop  # noqa: F401  (registers the plugin, allowlists Namespace for torch.load)
from fairseq_tokendrop.checkpoints.safe_loading import load_checkpoint
from fairseq_tokendrop.commands.model_vocabulary import add_vocabulary_args, find_data_files, wordpiece_vocabulary
from fairseq_tokendrop.inspection.html_page import write_page
from fairseq_tokendrop.inspection.marks import row_labels, sentence_marks
from fairseq_tokendrop.inspection.ranking import dictionary_frequency, ranking
from fairseq_tokendrop.inspection.report import CheckpointView, Report, write_json
from fairseq_tokendrop.inspection.terminal import sentence_lines
from fairseq_tokendrop.commands.log import command_log
from fairseq_tokendrop.errors import TokendropError
from fairseq_tokendrop.data.text_encoder import sentencepiece_encoder, wordpiece_encoder
from fairseq_tokendrop.models.tokendrop_config import comma_list
from fairseq_tokendrop.training.kept_by_kind import vocabulary_kinds

log = command_log("inspect")


def load_model(path: str, data: str, seed):
    """(model, task, update, whether the run started from a scores file) of a checkpoint; its scores come in
    through the model's own load."""
    if not os.path.isfile(path):
        raise TokendropError(f"no such checkpoint: {path}")
    overrides = {**({"data": data} if data else {}), **({"seed": seed} if seed is not None else {})}
    try:
        state = load_checkpoint(path, arg_overrides=overrides)
    except Exception as e:
        raise TokendropError(f"cannot read {path} as a fairseq checkpoint ({type(e).__name__}: {e})")
    if state.get("cfg") is None or "model" not in state:
        raise TokendropError(f"{path} has no cfg/model: not a fairseq-train checkpoint")
    model_cfg = state["cfg"].model
    started_from_file = bool(safe_getattr(model_cfg, "init_token_importance", None))
    # the scores come from the checkpoint: the file the run started from need not exist any more
    overwrite_args_by_name(state["cfg"], {"init_token_importance": None})
    try:
        models, _, task = checkpoint_utils.load_model_ensemble_and_task([path], arg_overrides=overrides, state=state)
    except FileNotFoundError as e:
        raise TokendropError(f"{path}: {e} (give the data dir holding its dict.txt with --data)") from None
    history = state.get("optimizer_history") or [{}]
    return models[0].eval(), task, int(history[-1].get("num_updates", 0)), started_from_file


def mode_text(model, num_updates: int) -> str:
    """The flags that decide the selection, in words."""
    encoder, args = model.encoder, getattr(model, "args", None)
    if getattr(encoder, "strategy", None) is None:
        return "no dropping: every layer sees every token"
    strategy = args.token_drop_strategy
    if encoder.keep_schedule is not None:
        length = (f"--token-keep-schedule {comma_list(args.token_keep_schedule)} "
                  f"(keeps {encoder.keep_schedule.kept(num_updates)} at this update)")
    elif args.token_keep_k:
        length = f"--token-keep-k {args.token_keep_k}"
    else:
        length = f"--token-drop {args.token_drop}"
    seed = "" if strategy == "importance" else f", --seed {encoder.strategy.noise.seed}"
    return f"--token-drop-strategy {strategy}, {length}{seed}"


def text_encoder(args, data_dir: str):
    """The checkpoint's own tokenizer over its data dir's dict.txt (``data/text_encoder.py``, as fine-tuning
    encodes), found as the export finds it."""
    dict_path = os.path.join(data_dir, "dict.txt")
    wordpiece = wordpiece_vocabulary(data_dir, args.vocab, args.lowercase, log)
    if wordpiece is not None:
        return wordpiece_encoder(wordpiece.vocab_path, wordpiece.lower_case, dict_path)
    _, spm_path = find_data_files(data_dir, args.spm_model)
    if spm_path is None:
        raise TokendropError(f"--text needs the checkpoint's vocabulary: no vocab.txt, spm.model or "
                             f"sentencepiece.bpe.model in {data_dir} (give --vocab or --spm-model)")
    log(f"sentencepiece model {spm_path}")
    return sentencepiece_encoder(spm_path, dict_path)


def sentence_ids(ids, dictionary, max_positions: int):
    """``<s> ids </s>``, cut to ``max_positions``: one sentence as training frames it."""
    return [dictionary.bos(), *ids[:max_positions - 2], dictionary.eos()]


def read_text(path: str):
    try:
        handle = sys.stdin if path == "-" else open(path, encoding="utf-8")
        with handle:
            return [line.strip() for line in handle if line.strip()]
    except OSError as e:
        raise TokendropError(f"--text: {e}") from None
    except UnicodeDecodeError as e:
        raise TokendropError(f"--text {path}: not UTF-8 text ({e})") from None


def input_sentences(args, model, task, data_dir):
    """The ids of every sentence to show: ``<s> ... </s>`` lines of --text, or items of --split."""
    if args.text is not None:
        dictionary = task.source_dictionary
        lines = read_text(args.text)[:args.sentences]
        if not lines:
            raise TokendropError(f"--text {args.text}: no non-empty line")
        return [sentence_ids(ids, dictionary, model.max_positions()) for ids in text_encoder(args, data_dir).ids(lines)]
    try:
        task.load_dataset(args.split)
    except FileNotFoundError as e:
        raise TokendropError(f"--split {args.split}: {e}") from None
    dataset = task.dataset(args.split)
    dataset.set_epoch(1)  # masked_lm's masks depend on the epoch: those of the first, as validation's iterator sets
    return [dataset[i]["net_input.src_tokens"].tolist() for i in range(min(args.sentences, len(dataset)))]


def checkpoint_view(path, model, num_updates, started_from_file, sentences) -> CheckpointView:
    tracker = getattr(model, "token_importance", None)
    scores = None
    if tracker is None or tracker.missing_from_last_load:
        log(f"{path}: no importance scores in this checkpoint (a stock RoBERTa, or one saved without them)")
    else:
        init = None if started_from_file else model.args.token_importance_init
        scores = ranking(tracker.get().numpy(), tracker.pins.pinned.numpy(), init)
    return CheckpointView(path, num_updates, mode_text(model, num_updates), row_labels(model.encoder),
                          sentence_marks(model.encoder, sentences, num_updates), scores)


def build_report(args) -> Report:
    last = args.checkpoints[-1]
    log(f"loading {last}")
    model, task, num_updates, from_file = load_model(last, args.data, args.seed)
    data_dir = args.data or task.cfg.data.split(os.pathsep)[0]
    dictionary = task.source_dictionary
    sentences = input_sentences(args, model, task, data_dir)
    views = {last: checkpoint_view(last, model, num_updates, from_file, sentences)}
    for path in args.checkpoints[:-1]:
        log(f"loading {path}")
        other, other_task, other_updates, other_from_file = load_model(path, args.data, args.seed)
        if list(other_task.source_dictionary.symbols) != list(dictionary.symbols):
            raise TokendropError(f"{path} has another vocabulary than {last}: give checkpoints of one run")
        views[path] = checkpoint_view(path, other, other_updates, other_from_file, sentences)
    frequency = dictionary_frequency(dictionary)
    if frequency is None:
        log(f"{data_dir}/dict.txt holds no frequencies (all counts equal): no score-frequency comparison")
    kinds = None if frequency is None else vocabulary_kinds(dictionary, frequency)
    return Report(list(dictionary.symbols), frequency, kinds, [views[p] for p in args.checkpoints], args.top)


def terminal_lines(report: Report, width: int, colour: bool):
    shown = report.shown
    yield f"{shown.path}: update {shown.num_updates}; {shown.mode}"
    if not colour:
        yield "'^' under a token: the layers named on the left skip it"
    for s, marks in enumerate(shown.marks):
        yield ""
        yield f"sentence {s}: {len(marks.ids)} tokens, {marks.kept_length} kept"
        yield from sentence_lines([report.symbols[i] for i in marks.ids], marks.kept, shown.labels, width, colour)
    for view in report.views:
        yield ""
        if view.ranking is None:
            yield f"{view.path}: no importance scores"
            continue
        most, least = view.ranking.ends(report.top)
        yield (f"importance ranking of {view.path} (update {view.num_updates}): {int(view.ranking.ranked.sum())} "
               "ranked ids" + (f", {view.ranking.at_init} still at the initial score" if view.ranking.at_init else ""))
        for title, ids in (("most important", most), ("least important", least)):
            yield f"  {title}: " + ", ".join(f"{report.symbols[i]} {view.ranking.scores[i]:.2f}" for i in ids)
        if report.frequency is not None:
            rho = view.ranking.frequency_correlation(report.frequency)
            yield f"  score against corpus frequency: Spearman {rho:.3f} (-1: importance is inverse frequency)"
    steps = report.series()
    if steps:
        yield ""
        yield "between checkpoints (Spearman of the scores; share of the sentences' tokens switched):"
        for step in steps:
            yield f"  {step.before} -> {step.after}: {step.rank_correlation:.3f}; {step.switched:.3f}"


def write_png(report: Report, path: str) -> None:
    if importlib.util.find_spec("matplotlib") is None:  # the picture is optional, the rest of the report is not
        log("no --png: matplotlib is missing (pip install .[research])")
        return
    from fairseq_tokendrop.research.inspect_png import write_png as draw
    draw(report, path)
    log(f"wrote {path}")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoints", nargs="+", metavar="CHECKPOINT",
                        help="fairseq-train checkpoints of one run, oldest first; the last one's marks are shown")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--text", metavar="FILE", help="sentences, one a line ('-': stdin)")
    source.add_argument("--split", default="valid", help="a split of the data dir (default: %(default)s)")
    parser.add_argument("--sentences", type=int, default=8, metavar="N", help="how many to show (default: %(default)s)")
    parser.add_argument("--seed", type=int, metavar="S", help="the random strategies' seed (default: the checkpoint's --seed)")
    add_vocabulary_args(parser, "that --text is encoded with", "--text is tokenized with it")
    parser.add_argument("--top", type=int, default=20, metavar="N", help="most and least important ids to list "
                        "(default: %(default)s)")
    parser.add_argument("--html", metavar="PATH", help="write the page here")
    parser.add_argument("--json", metavar="PATH", help="write everything as JSON here")
    parser.add_argument("--png", metavar="PATH", help="draw the sentences and the score-frequency plot (matplotlib)")
    parser.add_argument("--color", choices=("auto", "always", "never"), default="auto",
                        help="dropped tokens struck through in colour instead of marked by '^' (auto: on a terminal)")
    parser.add_argument("--width", type=int, metavar="N", help="columns of the terminal view (default: the terminal's)")
    args = parser.parse_args(argv)
    if args.sentences < 1 or args.top < 0:
        parser.error("--sentences must be >= 1 and --top >= 0")
    return args


def main(argv=None):
    args = parse_args(argv)
    # Importing fairseq leaves the root logger at DEBUG; this command reports its own progress.
    logging.getLogger().setLevel(logging.WARNING)
    report = build_report(args)
    colour = args.color == "always" or (args.color == "auto" and sys.stdout.isatty())
    width = args.width or shutil.get_terminal_size((120, 24)).columns
    for line in terminal_lines(report, width, colour):
        print(line)
    if args.html:
        write_page(report, args.html)
        log(f"wrote {args.html}")
    if args.json:
        write_json(report, args.json)
        log(f"wrote {args.json}")
    if args.png:
        write_png(report, args.png)


if __name__ == "__main__":
    main()
