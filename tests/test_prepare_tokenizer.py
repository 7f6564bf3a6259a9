"""prepare_corpus --tokenizer on inputs the producers' own libraries wrote (Parquet shards by pyarrow, zstd JSON
lines by zstandard; a vocab.txt and a tokenizer.json trained by ``tokenizers``):

- the binarized ids of every line equal what transformers' own tokenizer gives for it (BertTokenizerFast(vocab.txt),
  PreTrainedTokenizerFast(tokenizer_file=...)), the specials mapped by their text, in a ``python -I`` that never
  imports the plugin; the documents reach fairseq as records, so complete_doc blocks stay inside one;
- a model trained 10 updates on each (the README's seed-000 recipe: Parquet, WordPiece, RoBERTa packing,
  --token-keep-k, whole-word masking) exports to HF, where AutoTokenizer + AutoModelForMaskedLM predict the
  fairseq model's top-3 at masked positions;
- (in this process) refused runs leave no data-bin and name the file and record; a refused run resumes.
"""
import json
import os
import random
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
import zstandard

from conftest import REPO, load_script, train_flags
from hf_isolated import run_isolated
from fairseq_tokendrop.errors import TokendropError

WORDPIECE_ROLES = {"[CLS]": "<s>", "[SEP]": "</s>", "[UNK]": "<unk>", "[MASK]": "<mask>"}  # [PAD] is a word
JSON_ROLES = dict(WORDPIECE_ROLES, **{"[PAD]": "<pad>"})  # a tokenizer.json's pad token is fairseq's <pad>
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
DATA_BIN = ("dict.txt", "train.bin", "train.idx", "valid.bin", "valid.idx")
TRAIN = ["--max-update", "10", "--sample-break-mode", "none", "--token-keep-k", "16", "--disable-validation"]
MASKED = ["The [MASK] Playwright wrote a play.", "a [MASK] of café, and [MASK] dog"]


def documents(rng, n):
    """Records of one to four lines (a blank line, padding spaces and an empty record among them), mixed case."""
    words = ["the", "Playwright", "wrote", "unaffable", "plays", "about", "a", "cat", "café", "naïve", "dog",
             "ran", "quietly", "over", "hills", "and", "rivers", "x" * 30]
    out = []
    for i in range(n):
        lines = [" ".join(rng.choice(words) for _ in range(rng.randint(2, 12))) + rng.choice([".", "!", ""])
                 for _ in range(rng.randint(1, 4))]
        if i % 7 == 3:
            lines.insert(1, "   ")
        out.append("" if i % 11 == 5 else "\n".join(lines))
    return out


def write_inputs(root, rng):
    """Two Parquet shards (row groups of 16) and zstd JSON lines, by pyarrow and zstandard."""
    train_a, train_b, valid = documents(rng, 90), documents(rng, 40), documents(rng, 30)
    for name, texts in (("a", train_a), ("b", train_b)):
        pq.write_table(pa.table({"id": list(range(len(texts))), "text": texts}), root / f"train-{name}.parquet",
                       row_group_size=16)
    payload = "".join(json.dumps({"text": t, "url": "u"}) + "\n" for t in valid).encode("utf-8")
    (root / "valid.jsonl.zst").write_bytes(zstandard.ZstdCompressor().compress(payload))
    return dict(train=[str(root / "train-a.parquet"), str(root / "train-b.parquet")],
                valid=[str(root / "valid.jsonl.zst")], train_texts=train_a + train_b, valid_texts=valid)


def train_tokenizers(root, texts):
    """A lower-cased WordPiece vocab.txt, and a BPE tokenizer.json whose roles its post-processor and names tell."""
    from tokenizers import BertWordPieceTokenizer, Tokenizer, models, normalizers, pre_tokenizers, processors, trainers

    wordpiece = BertWordPieceTokenizer(lowercase=True)
    wordpiece.train_from_iterator(texts, vocab_size=150, special_tokens=SPECIALS)
    wordpiece.save_model(str(root))
    bpe = Tokenizer(models.BPE(unk_token="[UNK]"))
    bpe.normalizer = normalizers.NFKC()
    bpe.pre_tokenizer = pre_tokenizers.Metaspace()
    bpe.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=150, special_tokens=["[UNK]", "[CLS]", "[SEP]",
                                                                                      "[PAD]", "[MASK]"]))
    bpe.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", bpe.token_to_id("[CLS]")), ("[SEP]", bpe.token_to_id("[SEP]"))])
    bpe.save(str(root / "tokenizer.json"))
    return {"wordpiece": str(root / "vocab.txt"), "json": str(root / "tokenizer.json")}


def prepare(inputs, tokenizer, destdir, *extra):
    return subprocess.run([sys.executable, REPO / "scripts" / "prepare_corpus.py", "--train", *inputs["train"],
                           "--valid", *inputs["valid"], "--tokenizer", tokenizer, "--destdir", destdir,
                           "--workers", "2", "--progress-every", "100", *extra], capture_output=True, text=True)


def record_lines(text):
    """A record's lines as the docs say: split at line breaks, blank ones dropped."""
    return [line.rstrip("\r") for line in text.split("\n") if line.strip()]


def expected_items(texts, encode):
    """fairseq-preprocess' layout written out: a line per item, a separator item between documents."""
    items = []
    for lines in filter(None, map(record_lines, texts)):
        if items:
            items.append([])
        items += [encode(line) for line in lines]
    return items


HF_SIDE = """
from transformers import AutoModelForMaskedLM, AutoTokenizer, BertTokenizerFast, PreTrainedTokenizerFast
tokenizers = {"wordpiece": BertTokenizerFast(args["wordpiece"], do_lower_case=True),
              "json": PreTrainedTokenizerFast(tokenizer_file=args["json"])}
out["tokens"] = {kind: {line: t.convert_ids_to_tokens(t(line, add_special_tokens=False)["input_ids"])
                        for line in args["lines"]} for kind, t in tokenizers.items()}
for kind, export in args["exports"].items():
    tokenizer = AutoTokenizer.from_pretrained(export)
    model = AutoModelForMaskedLM.from_pretrained(export).eval()
    texts = [text.replace("[MASK]", tokenizer.mask_token) for text in args["masked"]]
    batch = tokenizer(texts, return_tensors="pt", padding=True)
    with torch.no_grad():
        logits = model(**batch).logits
    masked = batch["input_ids"] == tokenizer.mask_token_id
    out[kind] = {"class": type(model).__name__,
                 "input_tokens": [tokenizer.convert_ids_to_tokens(row) for row in batch["input_ids"].tolist()],
                 "attention_mask": batch["attention_mask"].tolist(),
                 "vocab": tokenizer.convert_ids_to_tokens(list(range(len(tokenizer)))),
                 "top3": [tokenizer.convert_ids_to_tokens(row.topk(3).indices.tolist()) for row in logits[masked]]}
"""


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Both tokenizers' data-bins, a 10-update model on each with its HF export, and the HF side, once."""
    root = tmp_path_factory.mktemp("prepare_tokenizer")
    inputs = write_inputs(root, random.Random(7))
    tokenizers = train_tokenizers(root, inputs["train_texts"])
    runs = {}
    for kind, path in tokenizers.items():
        dest = root / f"bin-{kind}"
        done = prepare(inputs, path, dest)
        assert done.returncode == 0, done.stderr[-3000:]
        flags = {"wordpiece": ["--bpe", "bert", "--bpe-vocab-file", str(dest / "vocab.txt")],
                 "json": ["--bpe", "tokenizer_json", "--tokenizer-json", str(dest / "tokenizer.json")]}[kind]
        proc = subprocess.run([sys.executable, "-m", "fairseq_cli.train",
                               *map(str, train_flags(dest, root / f"ck-{kind}", *TRAIN, "--mask-whole-words", *flags))],
                              env=dict(os.environ, OMP_NUM_THREADS="1"), capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr[-3000:]
        checkpoint = root / f"ck-{kind}" / "checkpoint_last.pt"
        load_script("export_checkpoint").main([str(checkpoint), "--hf-out", str(root / f"hf-{kind}")])
        runs[kind] = dict(dest=dest, log=done.stderr + done.stdout, checkpoint=checkpoint, train_log=proc.stdout)
    lines = sorted({line for text in inputs["train_texts"] + inputs["valid_texts"] for line in record_lines(text)})
    hf = run_isolated(HF_SIDE, dict(tokenizers, lines=lines, masked=MASKED,
                                    exports={kind: str(root / f"hf-{kind}") for kind in tokenizers}), root)
    return dict(inputs=inputs, runs=runs, hf=hf)


def fairseq_dictionary(dest):
    from fairseq.data import Dictionary

    dictionary = Dictionary.load(str(dest / "dict.txt"))
    dictionary.add_symbol("<mask>")  # as masked_lm does
    return dictionary


def by_text(dictionary, roles, tokens):
    """HF tokens -> fairseq ids through their text: a role's token is fairseq's symbol, any other itself."""
    return [dictionary.index(roles.get(t, t)) for t in tokens]


@pytest.mark.slow
@pytest.mark.parametrize("kind, roles", [("wordpiece", WORDPIECE_ROLES), ("json", JSON_ROLES)])
def test_binarized_ids_are_transformers_ids(runs, kind, roles):
    from fairseq.data import data_utils

    dest = runs["runs"][kind]["dest"]
    dictionary = fairseq_dictionary(dest)
    hf_tokens = runs["hf"]["tokens"][kind]
    assert dictionary.unk() not in by_text(dictionary, roles, [t for ts in hf_tokens.values() for t in ts])
    eos = dictionary.eos()
    for split in ("train", "valid"):
        data = data_utils.load_indexed_dataset(str(dest / split), dictionary)
        items = [data[i].tolist() for i in range(len(data))]
        expected = expected_items(runs["inputs"][f"{split}_texts"],
                                  lambda line: by_text(dictionary, roles, hf_tokens[line]))
        assert items == [ids + [eos] for ids in expected]
    # the records' words were lower-cased, as BertTokenizerFast(do_lower_case=True) and the vocabulary's casing say
    assert "do_lower_case=True" in runs["runs"][kind]["log"] or kind == "json"


@pytest.mark.slow
def test_complete_doc_blocks_stay_inside_a_record(runs):
    from fairseq.data import TokenBlockDataset, data_utils

    dest = runs["runs"]["wordpiece"]["dest"]
    dictionary = fairseq_dictionary(dest)
    train = data_utils.load_indexed_dataset(str(dest / "train"), dictionary)
    records = [lines for lines in map(record_lines, runs["inputs"]["train_texts"]) if lines]
    record_of_item = []
    for number, lines in enumerate(records):
        record_of_item += ([-1] if number else []) + [number] * len(lines)
    record_of_token = np.repeat(np.array(record_of_item), train.sizes)
    blocks = TokenBlockDataset(train, train.sizes, 40, pad=dictionary.pad(), eos=dictionary.eos(),
                               break_mode="complete_doc")
    assert all(len(set(record_of_token[s:e]) - {-1}) == 1 for s, e in blocks.slice_indices)
    assert len({int(record_of_token[s]) for s, _ in blocks.slice_indices}) == len(records)


@pytest.mark.slow
@pytest.mark.parametrize("kind, roles", [("wordpiece", WORDPIECE_ROLES), ("json", JSON_ROLES)])
def test_the_hf_export_predicts_the_fairseq_models_top3(runs, kind, roles):
    from fairseq import checkpoint_utils

    run, hf = runs["runs"][kind], runs["hf"][kind]
    assert hf["class"] == "BertForMaskedLM"
    assert "kept_len 16" in run["train_log"] or '"kept_len": "16"' in run["train_log"]
    dictionary = fairseq_dictionary(run["dest"])
    models, _, _ = checkpoint_utils.load_model_ensemble_and_task([str(run["checkpoint"])])
    model = models[0].eval()
    ids = torch.tensor([by_text(dictionary, roles, row) for row in hf["input_tokens"]])
    ids = torch.where(torch.tensor(hf["attention_mask"]).bool(), ids, dictionary.pad())
    with torch.no_grad():
        logits = model(ids)[0]
    # the fairseq model over the HF vocabulary (its columns, in HF's order: fairseq's <pad> under a vocab.txt has none)
    columns = torch.tensor(by_text(dictionary, roles, hf["vocab"]))
    at_masks = logits[ids == dictionary.index("<mask>")][:, columns]
    top3 = [[hf["vocab"][i] for i in row.topk(3).indices.tolist()] for row in at_masks]
    assert len(top3) == 3 and top3 == hf["top3"]


@pytest.mark.slow
def test_progress_reports_records_tokens_and_rate(runs):
    log = runs["runs"]["wordpiece"]["log"]
    assert "encode-train: 100 lines, " in log and " tokens/s, " in log
    done = [line for line in log.splitlines() if line.startswith("prepare_corpus: encode-train: ") and "done" in line]
    records = sum(1 for text in runs["inputs"]["train_texts"] if record_lines(text))
    assert f"{records:,} documents" in done[0]


# ---- in this process (no worker processes): refused and resumed runs

def run_in_process(*argv):
    load_script("prepare_corpus").main([str(a) for a in argv] + ["--workers", "1"])


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    root = tmp_path_factory.mktemp("small")
    inputs = write_inputs(root, random.Random(3))
    return root, inputs, train_tokenizers(root, inputs["train_texts"])


@pytest.mark.parametrize("case", ["missing_field", "not_utf8", "empty", "neither_kind", "no_specials"])
def test_a_refused_run_names_file_and_record_and_leaves_no_data_bin(small, tmp_path, case):
    root, inputs, tokenizers = small
    train, valid, tokenizer = inputs["train"], inputs["valid"], tokenizers["wordpiece"]
    if case == "missing_field":  # deep in the file: found while encoding, after the train split is staged
        texts = documents(random.Random(5), 40)
        valid = [str(tmp_path / "bad.jsonl")]
        with open(valid[0], "w") as handle:
            for i, text in enumerate(texts):
                handle.write(json.dumps({"text": text} if i != 37 else {"body": text}) + "\n")
        expected = f"{valid[0]}: record 38 (line 38) has no field 'text'"
    elif case == "not_utf8":
        valid = [str(tmp_path / "bad.parquet")]
        pq.write_table(pa.table({"text": pa.array([b"fine"] * 20 + [b"caf\xe9"], type=pa.binary())}), valid[0],
                       row_group_size=16)
        expected = f"{valid[0]}: record 21 (row group 1) is not valid UTF-8"
    elif case == "empty":
        valid = [str(tmp_path / "empty.parquet")]
        pq.write_table(pa.table({"text": pa.array([], type=pa.string())}), valid[0])
        expected = f"--valid corpus is empty (no non-blank line) in: {valid[0]}"
    elif case == "neither_kind":
        tokenizer = train[0]  # a Parquet shard
        expected = f"--tokenizer {tokenizer}: neither a tokenizer.json, a WordPiece vocab.txt"
    else:
        tokenizer = str(tmp_path / "vocab.txt")
        with open(tokenizers["wordpiece"]) as source, open(tokenizer, "w") as out:
            out.writelines(line for line in source if line.strip() not in ("[CLS]", "[MASK]"))
        expected = f"{tokenizer}: special token(s) [CLS], [MASK] not found"
    dest = tmp_path / "bin"
    with pytest.raises(TokendropError) as caught:
        run_in_process("--train", *train, "--valid", *valid, "--tokenizer", tokenizer, "--destdir", dest)
    assert caught.value.message.startswith(expected) and "\n" not in caught.value.message
    left = sorted(os.listdir(dest)) if dest.exists() else []
    assert left in ([], [".prepare_corpus"])  # the stage is kept to resume from; no data-bin file
    assert not any(name in DATA_BIN for name in left)


def test_a_refused_run_resumes_and_a_rerun_changes_nothing(small, tmp_path, capfd):
    root, inputs, tokenizers = small
    valid = tmp_path / "valid.jsonl"
    valid.write_bytes(b'{"text": "a fine record"}\n{"text": "bad \xff"}\n')
    argv = ["--train", *inputs["train"], "--valid", str(valid), "--tokenizer", tokenizers["json"], "--destdir",
            tmp_path / "bin"]
    with pytest.raises(TokendropError, match="record 2 .line 2. is not valid UTF-8"):
        run_in_process(*argv)
    staged = tmp_path / "bin" / ".prepare_corpus" / "stage" / "train.bin"
    first = os.stat(staged).st_mtime_ns
    valid.write_text('{"text": "a fine record"}\n{"text": "now fine too"}\n')
    capfd.readouterr()
    run_in_process(*argv)
    log = capfd.readouterr().err
    assert "tokenizer: already done, skipped" in log and "encode-train: already done, skipped" in log
    assert "encode-valid: running" in log and "publish: running" in log
    assert os.stat(staged).st_mtime_ns == first
    files = {name: (tmp_path / "bin" / name).read_bytes() for name in DATA_BIN + ("tokenizer.json",)}
    run_in_process(*argv)
    log = capfd.readouterr().err
    assert "running" not in log and log.count("already done, skipped") == 4
    assert files == {name: (tmp_path / "bin" / name).read_bytes() for name in files}
    # the data-bin a fresh run makes is byte for byte the resumed one's
    run_in_process(*argv[:-1], tmp_path / "fresh")
    assert files == {name: (tmp_path / "fresh" / name).read_bytes() for name in files}


@pytest.mark.slow  # prepare_corpus' sentencepiece path runs fairseq-preprocess
def test_the_speed_tool_times_every_path_on_the_same_tokens(tmp_path, capsys):
    rng = random.Random(11)
    syllables = ["ka", "lo", "mi", "ne", "ru", "se", "ta", "bu", "so", "vi", "dra", "pel", "in", "gor", "ux", "qe"]
    words = ["".join(rng.choice(syllables) for _ in range(rng.randint(1, 4))) for _ in range(400)]
    for split, n in (("train", 600), ("valid", 60)):
        (tmp_path / f"{split}.txt").write_text("".join(
            " ".join(rng.choice(words) for _ in range(rng.randint(4, 20))) + ("\n\n" if i % 5 == 4 else "\n")
            for i in range(n)))
    load_script("tokenizer_speed").main(["--corpus-dir", str(tmp_path), "--repeat", "2", "--rounds", "1",
                                         "--workers", "1", "--vocab-size", "400", "--json", str(tmp_path / "s.json")])
    printed = capsys.readouterr().out.splitlines()
    results = json.loads((tmp_path / "s.json").read_text())["results"]
    assert list(results) == ["sentencepiece", "sentencepiece-ids", "wordpiece", "tokenizer.json"]
    # one sentencepiece model: the text path and the id path encode the same tokens
    assert results["sentencepiece"]["tokens"] == results["sentencepiece-ids"]["tokens"]
    for path, r in results.items():
        assert r["encode_tokens_per_s"] == pytest.approx(r["tokens"] / r["encode_s"])
        assert r["whole_s"] >= r["encode_s"] > 0
        assert any(line.startswith(path) and f"{r['tokens']:,}" in line for line in printed)
