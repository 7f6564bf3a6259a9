"""fairseq-tokendrop-inspect: its marks against a sort by hand and against the encoder's own draws, its page
parsed, its rank correlation against scipy's, and the training-time TensorBoard series read back.

The checkpoints are written in-process (``checkpoint_io``, as the import commands write them) over a data
dir made here: a sentencepiece word model, a dict.txt with the corpus counts, and a binarized valid split.
"""
import json
import math
from collections import Counter
from html.parser import HTMLParser

import numpy as np
import pytest
import sentencepiece
import torch
from fairseq import tasks
from fairseq.data import Dictionary, indexed_dataset
from omegaconf import OmegaConf
from scipy.stats import spearmanr

from fairseq_tokendrop import set_token_importance
from fairseq_tokendrop.checkpoints.scores_after_broadcast import saved_scores
from fairseq_tokendrop.checkpoints.checkpoint_io import (atomic_torch_save, fresh_training_state, training_cfg,
                                                         without_importance)
from fairseq_tokendrop.commands import inspect_dropping
from fairseq_tokendrop.errors import TokendropError
from fairseq_tokendrop.inspection.ranking import spearman
from fairseq_tokendrop.method.keep_schedule import parse_keep_schedule
from fairseq_tokendrop.method.layer_plans import LayerwisePlan, TokenDroppingPlan
from fairseq_tokendrop.method.pins import PIN
from fairseq_tokendrop.training.kept_by_kind import (FREQUENT, NONE, REST, SPECIAL, KeptTally, kept_shares,
                                                     vocabulary_kinds)

from conftest import run_cli, train_flags, write_tiny_corpus
from test_host_syncs import HostReads

DIMS = dict(encoder_layers=6, encoder_embed_dim=16, encoder_ffn_embed_dim=32, encoder_attention_heads=2,
            max_positions=32, dropout=0.0, attention_dropout=0.0)
TEXT = ["w3 w24 w15 w18 w9 w6 w21 w12 w3 w24 w1 w10", "w7 hello w22 w5 w8 w17 w14 w11 w2",
        "w0 w3 w24 w15 w18 w9 w6 w21 w12 w27 w20 w29 w4 w1 w10 w13 w16 w19 w26"]
ALLOW, DENY = "<s>,</s>,<unk>,<mask>,▁w3", "<pad>,▁w24"


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """spm.model (a word model), dict.txt with the corpus counts in fairseq-preprocess's order, valid.{bin,idx}."""
    root = tmp_path_factory.mktemp("inspect_data")
    write_tiny_corpus(root / "corpus.txt", 300, seed=4)
    lines = [line for line in (root / "corpus.txt").read_text().splitlines() if line]
    sentencepiece.SentencePieceTrainer.train(sentence_iterator=iter(lines), model_prefix=str(root / "spm"),
                                             model_type="word", vocab_size=60, hard_vocab_limit=False)
    spm = sentencepiece.SentencePieceProcessor(model_file=str(root / "spm.model"))
    pieces = [spm.encode(line, out_type=str) for line in lines]
    dictionary = Dictionary()
    for piece, count in Counter(p for line in pieces for p in line).most_common():
        dictionary.add_symbol(piece, n=count)
    dictionary.save(str(root / "dict.txt"))
    builder = indexed_dataset.make_builder(str(root / "valid.bin"), impl="mmap", vocab_size=len(dictionary))
    for line in pieces[:20]:
        builder.add_item(dictionary.encode_line(" ".join(line), add_if_not_exist=False, append_eos=True))
    builder.finalize(str(root / "valid.idx"))
    return root


def write_checkpoint(path, data_dir, flags, scores=None, num_updates=0, keep_scores=True, seed=None):
    """A checkpoint of the model ``flags`` describe, with ``scores`` set; returns its cfg and model."""
    cfg = training_cfg(str(data_dir), "tokendrop_roberta_base", DIMS, *flags)
    conf = OmegaConf.create(cfg)
    model = tasks.setup_task(conf.task).build_model(conf.model)
    if scores is not None:
        set_token_importance(model, torch.as_tensor(scores, dtype=torch.float32))
    state = model.state_dict() if keep_scores else without_importance(model.state_dict())
    atomic_torch_save(fresh_training_state(cfg, state, "MaskedLmTokenDropLoss", num_updates), str(path))
    return conf, model


def distinct_scores(vocab_size, seed):
    """Scores with repeats (ties go to the earlier position), none at the initial 10.0."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 6, (vocab_size,), generator=g).float() / 2 + 0.25


def run_inspect(capsys, *argv):
    inspect_dropping.main([str(a) for a in argv])
    out = capsys.readouterr()
    return out.out, out.err


def terminal_marks(stdout, symbols_of):
    """Per sentence, ``[rows, T]`` kept marks read from the plain terminal view (no wrapping): under each
    token's first column, '^' = dropped."""
    lines = stdout.splitlines()
    found = []
    for i, line in enumerate(lines):
        if not line.startswith("sentence "):
            continue
        symbols = symbols_of(len(found))
        token_line = lines[i + 1]
        label_width = len(token_line) - len(token_line.lstrip(" "))
        starts = np.cumsum([label_width] + [len(s) + 1 for s in symbols[:-1]])
        rows = []
        for mark_line in lines[i + 2:]:
            if not mark_line or mark_line.startswith("sentence "):
                break
            rows.append([not (start < len(mark_line) and mark_line[start] == "^") for start in starts])
        found.append(np.array(rows))
    return found


def hand_kept(ids, scores, allow, deny, kept):
    """The positions importance keeps, by hand: allow pins +1e4, deny pins -1e4, else the id's score;
    highest first, the earlier position first among equals."""
    value = [PIN if i in allow else -PIN if i in deny else float(scores[i]) for i in ids]
    return sorted(sorted(range(len(ids)), key=lambda p: (-value[p], p))[:kept])


def test_importance_marks_equal_a_sort_by_hand_over_the_stored_scores(data_dir, tmp_path, capsys):
    flags = ["--token-drop", "0.4", "--token-allow-list", ALLOW, "--token-deny-list", DENY]
    dictionary = Dictionary.load(str(data_dir / "dict.txt"))
    vocab = len(dictionary) + 1  # <mask>
    scores = distinct_scores(vocab, seed=1)
    write_checkpoint(tmp_path / "ck.pt", data_dir, flags, scores, num_updates=7)
    stdout, stderr = run_inspect(capsys, tmp_path / "ck.pt", "--text", write_lines(tmp_path, TEXT), "--color", "never",
                                 "--width", "100000", "--json", tmp_path / "out.json")
    report = json.loads((tmp_path / "out.json").read_text())
    spm = sentencepiece.SentencePieceProcessor(model_file=str(data_dir / "spm.model"))
    symbols = list(dictionary.symbols) + ["<mask>"]
    index = {s: i for i, s in enumerate(symbols)}
    allow = {index[s] for s in ALLOW.split(",")}
    deny = {index[s] for s in DENY.split(",")}
    marks = terminal_marks(stdout, lambda s: report["sentences"][s]["tokens"])
    assert len(marks) == len(TEXT) == len(report["sentences"])
    for line, sentence, rows in zip(TEXT, report["sentences"], marks):
        ids = [0] + [index.get(p, dictionary.unk()) for p in spm.encode(line, out_type=str)] + [2]
        assert sentence["ids"] == ids
        keep = len(ids) - math.floor(0.4 * len(ids))
        expected = np.zeros(len(ids), dtype=bool)
        expected[hand_kept(ids, scores, allow, deny, keep)] = True
        assert rows.shape == (1, len(ids))
        assert (rows[0] == expected).all(), (sentence["tokens"], rows[0], expected)
        assert (np.array(sentence["kept"][0], dtype=bool) == expected).all()
    assert dictionary.unk() in report["sentences"][1]["ids"]  # "hello" is no piece of the dictionary
    assert "update 7" in stdout and "no importance scores" not in stderr


def test_the_picture_marks_the_kept_tokens_by_hand_and_plots_each_ranked_id(data_dir, tmp_path, capsys):
    """--png: a row of token marks per sentence, the kept ones (a sort by hand) on a box; below, a point per
    unpinned id the corpus holds, at its log count and score."""
    import matplotlib.pyplot as plt
    from matplotlib.image import imread

    from fairseq_tokendrop.research import inspect_png

    flags = ["--token-drop", "0.4", "--token-allow-list", ALLOW, "--token-deny-list", DENY]
    dictionary = Dictionary.load(str(data_dir / "dict.txt"))
    symbols = list(dictionary.symbols) + ["<mask>"]
    scores = distinct_scores(len(symbols), seed=5)
    write_checkpoint(tmp_path / "ck.pt", data_dir, flags, scores, num_updates=3)
    argv = [str(a) for a in (tmp_path / "ck.pt", "--text", write_lines(tmp_path, TEXT), "--png", tmp_path / "x.png")]
    run_inspect(capsys, *argv)
    # a line of marks per sentence (none wraps) and two of margin, then the scatter's 4.5 inches
    assert imread(str(tmp_path / "x.png")).shape[:2] == (round(inspect_png.DPI * (0.24 * (len(TEXT) + 2) + 4.5)),
                                                          round(inspect_png.DPI * inspect_png.WIDTH_IN))
    fig = inspect_png.figure(inspect_dropping.build_report(inspect_dropping.parse_args(argv)))
    marks_ax, scatter_ax = fig.axes
    rows = {}
    for text in marks_ax.texts:
        x, y = text.get_position()
        if x >= inspect_png.LABEL_CHARS:
            rows.setdefault(y, []).append((text.get_text(), text.get_bbox_patch() is not None))
    spm = sentencepiece.SentencePieceProcessor(model_file=str(data_dir / "spm.model"))
    index = {s: i for i, s in enumerate(symbols)}
    allow = {index[s] for s in ALLOW.split(",")}
    deny = {index[s] for s in DENY.split(",")}
    assert sorted(rows) == list(range(len(TEXT)))
    for line, row in zip(TEXT, (rows[y] for y in sorted(rows))):
        ids = [0] + [index.get(p, dictionary.unk()) for p in spm.encode(line, out_type=str)] + [2]
        kept = set(hand_kept(ids, scores, allow, deny, len(ids) - math.floor(0.4 * len(ids))))
        assert row == [(symbols[i], p in kept) for p, i in enumerate(ids)]
    counts = np.array(dictionary.count + [0], dtype=float)
    held = [i for i in range(len(symbols)) if i not in allow | deny and counts[i] > 0]
    points = scatter_ax.collections[0].get_offsets()
    assert np.array(sorted(map(tuple, points.tolist()))) == pytest.approx(
        np.array(sorted((math.log10(counts[i]), float(scores[i])) for i in held)))
    plt.close(fig)


def write_lines(tmp_path, lines):
    path = tmp_path / "text.txt"
    path.write_text("\n".join(lines) + "\n")
    return path


class Rows(HTMLParser):
    """The marks table's rows: (data-sentence, data-layer, [(token, kept)])."""

    def __init__(self):
        super().__init__()
        self.rows, self.span, self.svg = [], None, 0

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "tr" and "sentence" in (attrs.get("class") or "").split():
            self.rows.append((int(attrs["data-sentence"]), attrs["data-layer"], []))
        elif tag == "span" and attrs.get("class") in ("kept", "dropped"):
            self.span = attrs["class"] == "kept"
        elif tag == "svg":
            self.svg += 1

    def handle_data(self, data):
        if self.span is not None:
            self.rows[-1][2].append((data, self.span))
            self.span = None


@pytest.mark.parametrize("strategy", ["random", "random-ltd"])
def test_random_draws_per_layer_equal_the_encoders_own_at_the_same_seed(data_dir, tmp_path, capsys, strategy):
    """Sentence i is micro-batch i of the checkpoint's update; the page has one row per sentence and layer."""
    flags = ["--token-drop-strategy", strategy, "--token-keep-k", "6", "--seed", "5"]
    if strategy == "random-ltd":
        flags += ["--random-ltd-layers", "1,2,4"]
    conf, _ = write_checkpoint(tmp_path / "ck.pt", data_dir, flags, num_updates=13)
    run_inspect(capsys, tmp_path / "ck.pt", "--split", "valid", "--sentences", "5", "--seed", "11",
                "--json", tmp_path / "out.json", "--html", tmp_path / "page.html")
    report = json.loads((tmp_path / "out.json").read_text())
    conf.model.seed = 11
    model = tasks.setup_task(conf.task).build_model(conf.model)
    model.set_num_updates(13)
    model.train()
    layers = ["layer 1", "layer 2", "layer 4"] if strategy == "random-ltd" else ["layers 2-4"]
    assert report["rows"] == layers
    page = Rows()
    page.feed((tmp_path / "page.html").read_text())
    assert len(report["sentences"]) == 5
    assert [(s, layer) for s, layer, _ in page.rows] == [(s, layer) for s in range(5) for layer in layers]
    for s, sentence in enumerate(report["sentences"]):
        plan = model.encoder.plan(torch.tensor([sentence["ids"]]))
        assert isinstance(plan, LayerwisePlan if strategy == "random-ltd" else TokenDroppingPlan)
        index = plan.index if strategy == "random-ltd" else plan.index.unsqueeze(0)
        for r, positions in enumerate(index[:, 0].tolist()):
            assert [p for p, k in enumerate(sentence["kept"][r]) if k] == positions
            assert [k for _, k in page.rows[s * len(layers) + r][2]] == [bool(k) for k in sentence["kept"][r]]
    # the layers do draw apart, and the page shows the split's masked tokens as training reads them
    assert strategy == "random" or any(len({tuple(r) for r in s["kept"]}) > 1 for s in report["sentences"])
    assert any("<mask>" in s["tokens"] for s in report["sentences"])


def test_the_page_has_a_row_per_sentence_and_the_series_matches_scipy(data_dir, tmp_path, capsys):
    """Three checkpoints of one run on a kept-length schedule, the last saved without scores: the page's
    rows, the rank correlation against scipy's spearmanr, the switched share by hand, the ranking."""
    schedule = "4,32,20,2"
    flags = ["--token-keep-schedule", schedule, "--token-allow-list", ALLOW, "--token-deny-list", DENY]
    dictionary = Dictionary.load(str(data_dir / "dict.txt"))
    vocab = len(dictionary) + 1
    first, second = distinct_scores(vocab, seed=2), distinct_scores(vocab, seed=3)
    write_checkpoint(tmp_path / "a.pt", data_dir, flags, first, num_updates=10)
    write_checkpoint(tmp_path / "b.pt", data_dir, flags, second, num_updates=12)
    write_checkpoint(tmp_path / "c.pt", data_dir, flags, second, num_updates=13, keep_scores=False)
    stdout, stderr = run_inspect(capsys, tmp_path / "a.pt", tmp_path / "b.pt", tmp_path / "c.pt", "--split", "valid",
                                 "--sentences", "4", "--html", tmp_path / "page.html", "--json", tmp_path / "out.json")
    report = json.loads((tmp_path / "out.json").read_text())
    page = Rows()
    page.feed((tmp_path / "page.html").read_text())
    assert [s for s, _, _ in page.rows] == [0, 1, 2, 3]
    assert page.svg == 1  # the score-frequency scatter
    assert [line for line in stderr.splitlines() if "no importance scores" in line] == [
        f"inspect: {tmp_path / 'c.pt'}: no importance scores in this checkpoint (a stock RoBERTa, or one saved "
        "without them)"]
    symbols = list(dictionary.symbols) + ["<mask>"]
    allow = {symbols.index(s) for s in ALLOW.split(",")}
    deny = {symbols.index(s) for s in DENY.split(",")}
    unpinned = [i for i in range(vocab) if i not in allow | deny]
    assert report["series"][0]["rank_correlation"] == pytest.approx(
        spearmanr(first[unpinned], second[unpinned]).statistic, abs=1e-12)
    assert report["series"][1]["rank_correlation"] is None  # c has no scores
    # b -> c: b selects by its scores at update 12, c by the initial ones (its load had none to set) at 13
    marks = {}
    for update, scores in ((12, second), (13, torch.full((vocab,), 10.0))):
        kept = min(parse_keep_schedule(schedule, 32).kept(update), 32)
        marks[update] = [np.isin(np.arange(len(s["ids"])), hand_kept(s["ids"], scores, allow, deny, min(kept, len(s["ids"]))))
                         for s in report["sentences"]]
    switched = sum(int((b != c).sum()) for b, c in zip(marks[12], marks[13])) / sum(len(b) for b in marks[12])
    assert switched > 0 and report["series"][1]["switched"] == pytest.approx(switched)
    assert [np.array(s["kept"][0], dtype=bool).tolist() for s in report["sentences"]] == [m.tolist() for m in marks[13]]
    ranking = report["rankings"][1]
    counts = np.array(dictionary.count + [0], dtype=float)
    freq_ids = [i for i in unpinned if counts[i] > 0]
    assert ranking["frequency_correlation"] == pytest.approx(
        spearmanr(second[freq_ids], counts[freq_ids]).statistic, abs=1e-12)
    order = sorted(unpinned, key=lambda i: (-float(second[i]), i))
    assert ranking["most"] == [symbols[i] for i in order[:20]]
    assert ranking["least"] == [symbols[i] for i in order[::-1][:20]]
    assert "Spearman" in stdout


@pytest.mark.slow  # the pre-masked fixture converts with a pool of workers
def test_a_premasked_split_is_the_files_own_and_wordpiece_text_is_berts(premasked, tmp_path, capsys):
    """--split of a pre-masked dir shows the file's masked inputs; --text with a vocab.txt gives the ids of
    transformers' BertTokenizerFast, mapped onto the dictionary by symbol (not by the command's id map)."""
    from fairseq.data.indexed_dataset import MMapIndexedDataset
    from transformers import BertTokenizerFast

    from premasked_fixtures import by_symbol, vocab_tokens

    dest = premasked["dest"]
    write_checkpoint(tmp_path / "ck.pt", dest, ["--token-drop", "0.5"], distinct_scores(len(vocab_tokens()) + 1, 4),
                     num_updates=3)
    run_inspect(capsys, tmp_path / "ck.pt", "--split", "valid", "--sentences", "3", "--json", tmp_path / "split.json")
    split = json.loads((tmp_path / "split.json").read_text())
    src = MMapIndexedDataset(str(dest / "valid.src"))
    assert [s["ids"] for s in split["sentences"]] == [src[i].tolist() for i in range(3)]
    text = ["w1 w2s w3ing zzz w4", "W5 w6 w7 w8 w9 w10"]
    _, stderr = run_inspect(capsys, tmp_path / "ck.pt", "--text", write_lines(tmp_path, text),
                            "--vocab", premasked["vocab"], "--json", tmp_path / "text.json")
    shown = json.loads((tmp_path / "text.json").read_text())["sentences"]
    bert = BertTokenizerFast(str(premasked["vocab"]), do_lower_case=True)  # vocab_file (v4), vocab (v5)
    dictionary = Dictionary.load(str(dest / "dict.txt"))
    dictionary.add_symbol("<mask>")
    assert [s["ids"] for s in shown] == [by_symbol(vocab_tokens(), dictionary, bert.encode(t)).tolist() for t in text]
    assert shown[0]["tokens"][:5] == ["<s>", "w1", "w2", "##s", "w3"] and "<unk>" in shown[0]["tokens"]
    assert "do_lower_case=True" in stderr


def test_spearman_equals_scipys_with_and_without_ties():
    g = np.random.default_rng(0)
    for a, b in ((g.normal(size=50), g.normal(size=50)), (g.integers(0, 5, 80), g.integers(0, 3, 80)),
                 (np.arange(10.0), -np.arange(10.0) ** 3)):
        assert spearman(a, b) == pytest.approx(spearmanr(a, b).statistic, abs=1e-12)
    assert math.isnan(spearman(np.ones(5), np.arange(5)))


def test_a_missing_matplotlib_costs_one_line_and_not_the_exit_status(data_dir, tmp_path, capsys, monkeypatch):
    write_checkpoint(tmp_path / "ck.pt", data_dir, ["--token-drop", "0.5"])
    monkeypatch.setitem(__import__("sys").modules, "matplotlib", None)
    monkeypatch.delitem(__import__("sys").modules, "fairseq_tokendrop.research.inspect_png", raising=False)
    stdout, stderr = run_inspect(capsys, tmp_path / "ck.pt", "--sentences", "2", "--png", tmp_path / "x.png")
    assert [line for line in stderr.splitlines() if "png" in line] == [
        "inspect: no --png: matplotlib is missing (pip install .[research])"]
    assert not (tmp_path / "x.png").exists() and "sentence 1:" in stdout


def test_the_tally_counts_what_each_plan_kept_by_hand():
    """Token-dropping and layerwise plans over a padded batch; kinds by a made-up frequency."""
    from fairseq_tokendrop.standalone import made_up_dictionary

    dictionary = made_up_dictionary(25)
    tokens = torch.tensor([[0, 7, 5, 9, 5, 2], [0, 8, 24, 2, 1, 1]])
    tally = KeptTally(25)
    drop_index = torch.tensor([[0, 2, 5], [0, 2, 3]])
    ltd_index = torch.tensor([[[1, 3, 4], [0, 1, 2]], [[0, 4, 5], [0, 1, 3]]])
    with HostReads() as reads:  # what a training forward adds: no read of the device on the host
        tally.add(tokens, TokenDroppingPlan(drop_index, 6))
        first = tally.counts.clone()
        tally.add(tokens, LayerwisePlan((None, 0, 1, None), ltd_index))
    assert reads.sites == []
    first = first.numpy()
    came_in, kept = np.zeros((2, 25)), np.zeros((2, 25))  # per forward
    for b, row in enumerate(tokens.tolist()):
        for t in row:
            came_in[:, t] += 1
        for p in drop_index[b].tolist():
            kept[0, row[p]] += 1
        for p in ltd_index[0, b].tolist():  # random-LTD: the first wrapped layer's, as kept_frac counts
            kept[1, row[p]] += 1
    assert (first == np.stack([came_in[0], kept[0]])).all()
    reading = tally.read()
    tally.add(tokens, TokenDroppingPlan(drop_index, 6))
    assert (reading == np.stack([came_in.sum(0), kept.sum(0)])).all()  # a reading stays what it was
    frequency = np.arange(25)[::-1].astype(float)  # id 4 most frequent after the specials
    kinds = vocabulary_kinds(dictionary, frequency)
    assert kinds[[0, 2, 3, 24]].tolist() == [SPECIAL] * 4 and kinds[1] == NONE
    assert kinds[4:6].tolist() == [FREQUENT, FREQUENT] and kinds[6:24].tolist() == [REST] * 18  # ceil(0.1*20)
    shares = kept_shares(reading - first, kinds)  # the window between two readings: the layerwise plan
    for name, kind in (("special", SPECIAL), ("top10pct", FREQUENT), ("rest", REST)):
        ids = kinds == kind
        assert shares[name] == pytest.approx(kept[1, ids].sum() / came_in[1, ids].sum())


@pytest.mark.slow  # fairseq-train
def test_tensorboard_holds_the_histogram_the_kept_shares_and_kept_len(data_bin, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    schedule = "16,32,8,4"
    run_cli("fairseq_cli.train", *train_flags(data_bin, tmp_path / "ck", "--token-keep-schedule", schedule,
                                               "--max-update", "4", "--validate-interval-updates", "2",
                                               "--tensorboard-logdir", tmp_path / "tb"))
    events = EventAccumulator(str(tmp_path / "tb" / "train_inner"), size_guidance={"histograms": 0}).Reload()
    histograms = events.Histograms("token_importance")
    assert [h.step for h in histograms] == [2, 4]
    scores = saved_scores(str(tmp_path / "ck" / "checkpoint_last.pt"))
    free = scores[(scores.abs() < PIN)].double()  # the unpinned scores: <s> </s> <unk> <mask> <pad> are pinned
    assert histograms[-1].histogram_value.num == len(scores) - 5 == len(free)
    assert histograms[-1].histogram_value.sum == pytest.approx(float(free.sum()), rel=1e-9)
    for name in ("kept_share_special", "kept_share_top10pct", "kept_share_rest"):
        assert [s.step for s in events.Scalars(name)] == [2, 4]
    assert [s.value for s in events.Scalars("kept_share_special")] == [1.0, 1.0]  # all pinned to be kept
    assert all(0 < s.value < 1 for s in events.Scalars("kept_share_rest"))
    kept_len = events.Scalars("kept_len")
    assert [(s.step, s.value) for s in kept_len] == [(u, min(parse_keep_schedule(schedule, 32).kept(u - 1), 32))
                                                    for u in range(1, 5)]


def test_a_random_ltd_checkpoint_that_carries_the_old_default_lists_still_loads(data_dir, tmp_path, capsys):
    """Before the lists defaulted per strategy, every checkpoint saved TF's lists, random-LTD's too; random-LTD
    never reads them. Training with them is refused; loading such a checkpoint to inspect (or evaluate, or
    export: the same fairseq loader) is not."""
    flags = ["--token-drop-strategy", "random-ltd", "--token-keep-k", "6", "--random-ltd-layers", "1,2,4"]
    conf, _ = write_checkpoint(tmp_path / "ck.pt", data_dir, flags)
    state = torch.load(tmp_path / "ck.pt", weights_only=False)
    state["cfg"]["model"]["token_allow_list"], state["cfg"]["model"]["token_deny_list"] = "<s>,</s>,<unk>,<mask>", "<pad>"
    torch.save(state, tmp_path / "old.pt")
    conf.model.token_allow_list = "<s>,</s>,<unk>,<mask>"
    with pytest.raises(TokendropError, match="--token-allow-list does not apply to --token-drop-strategy random-ltd"):
        tasks.setup_task(conf.task).build_model(conf.model)
    run_inspect(capsys, tmp_path / "old.pt", "--split", "valid", "--sentences", "2", "--json", tmp_path / "out.json")
    report = json.loads((tmp_path / "out.json").read_text())
    assert report["rows"] == ["layer 1", "layer 2", "layer 4"] and len(report["sentences"]) == 2
