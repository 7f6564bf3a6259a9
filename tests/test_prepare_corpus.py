"""Tests of scripts/prepare_corpus.py and scripts/make_stdlib_corpus.py.

The scripts run as users run them, in a subprocess with this interpreter. What
they produce is checked against the input text parsed here, against
sentencepiece's own decoder, and against fairseq's own dataset readers.
"""

import inspect
import json
import os
import random
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import sentencepiece

pytestmark = pytest.mark.slow  # starts processes: not in the fast tier (tests/run.sh --fast)

SCRIPTS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "scripts")
BINARIZED = ("dict.txt", "train.bin", "train.idx", "valid.bin", "valid.idx")
STEPS = ("spm", "encode-train", "encode-valid", "binarize")


def run_script(name, *args, **kwargs):
    return subprocess.run(
        [sys.executable, os.path.join(SCRIPTS, name), *map(str, args)],
        capture_output=True,
        text=True,
        **kwargs,
    )


def prepare_command(corpus, destdir, *extra):
    return [
        sys.executable, os.path.join(SCRIPTS, "prepare_corpus.py"),
        "--train", corpus["train_a"], corpus["train_b"],
        "--valid", corpus["valid"],
        "--destdir", destdir,
        "--vocab-size", "400", "--workers", "2", "--progress-every", "500",
        *extra,
    ]  # fmt: skip


def synthetic_text(rng, n_docs, ragged):
    """Documents of made-up sentences; ``ragged`` adds the messy whitespace real files have."""
    syllables = ["ka", "lo", "mi", "ne", "ru", "sé", "tä", "bü", "ßo", "vi", "dra", "pel", "ïn", "gor"]
    words = sorted({"".join(rng.choice(syllables) for _ in range(rng.randint(1, 3))) for _ in range(300)})
    lines = ["", ""] if ragged else []  # blank lines before the first document
    for doc in range(n_docs):
        for _ in range(rng.randint(1, 8)):
            sentence = " ".join(rng.choice(words) for _ in range(rng.randint(3, 25)))
            sentence = sentence[0].upper() + sentence[1:] + rng.choice([".", "!", "?", ", 42."])
            if ragged and rng.random() < 0.05:
                sentence = "  " + sentence.replace(" ", "\t", 1) + "  \r"
            lines.append(sentence)
        if ragged:  # blank may mean empty, whitespace only, or several lines
            lines.extend(rng.choice(["", " ", "\t \r"]) for _ in range(rng.choice([1, 1, 1, 3])))
        else:
            lines.append("")
    if ragged:
        lines[5] += " ☃"  # one rare character: sentencepiece's byte fallback must carry it
    return "\n".join(lines) + "\n"


def parse_documents(paths):
    """The documents of the raw files as lists of whitespace-normalized sentences.

    Written independently of the script: blank lines and file ends split
    documents; empty documents do not exist.
    """
    docs = []
    for path in paths:
        current = []
        with open(path, encoding="utf-8", newline="\n") as handle:
            for line in handle:
                words = line.split()
                if words:
                    current.append(" ".join(words))
                elif current:
                    docs.append(current)
                    current = []
        if current:
            docs.append(current)
    return docs


def snapshot(destdir):
    """mtime and size of every file under destdir."""
    result = {}
    for root, _, files in os.walk(destdir):
        for name in files:
            path = os.path.join(root, name)
            stat = os.stat(path)
            result[os.path.relpath(path, destdir)] = (stat.st_mtime_ns, stat.st_size)
    return result


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    rng = random.Random(1234)
    paths = {}
    for name, n_docs, ragged in (("train_a", 250, True), ("train_b", 100, False), ("valid", 40, True)):
        paths[name] = str(root / f"{name}.txt")
        with open(paths[name], "w", encoding="utf-8", newline="\n") as handle:
            handle.write(synthetic_text(rng, n_docs, ragged))
    paths["root"] = root
    return paths


@pytest.fixture(scope="module")
def prepared(corpus, tmp_path_factory):
    """A run killed during binarization, then the run that finishes it, then a re-run."""
    destdir = str(tmp_path_factory.mktemp("bin"))
    stamps = os.path.join(destdir, ".prepare_corpus")
    killed = subprocess.Popen(
        prepare_command(corpus, destdir),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    # The encode-valid stamp appears just before fairseq-preprocess starts, and
    # importing fairseq alone takes seconds: the kill lands inside binarize.
    deadline = time.time() + 120
    while not os.path.exists(os.path.join(stamps, "encode-valid.json")) and killed.poll() is None:
        assert time.time() < deadline, "prepare_corpus did not reach the binarize step"
        time.sleep(0.01)
    os.killpg(killed.pid, signal.SIGKILL)
    killed.wait()
    after_kill = snapshot(destdir)

    finished = subprocess.run(prepare_command(corpus, destdir), capture_output=True, text=True)
    assert finished.returncode == 0, finished.stderr
    after_finish = snapshot(destdir)
    rerun = subprocess.run(prepare_command(corpus, destdir), capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    return {
        "destdir": destdir,
        "after_kill": after_kill,
        "finished": finished,
        "after_finish": after_finish,
        "rerun": rerun,
        "after_rerun": snapshot(destdir),
        "spm": sentencepiece.SentencePieceProcessor(model_file=os.path.join(destdir, "spm.model")),
    }


@pytest.fixture(scope="module")
def fairseq_data(prepared):
    from fairseq.data import Dictionary, data_utils

    dictionary = Dictionary.load(os.path.join(prepared["destdir"], "dict.txt"))
    train = data_utils.load_indexed_dataset(os.path.join(prepared["destdir"], "train"), dictionary)
    return dictionary, train


def test_encoded_text_decodes_back_to_the_input_documents(corpus, prepared):
    expected = parse_documents([corpus["train_a"], corpus["train_b"]])
    with open(os.path.join(prepared["destdir"], "encoded", "train.txt"), encoding="utf-8") as handle:
        text = handle.read()
    assert not text.startswith("\n") and "\n\n\n" not in text and text.endswith("\n")
    docs = [
        [prepared["spm"].decode(line.split(" ")) for line in block.split("\n")]
        for block in text.rstrip("\n").split("\n\n")
    ]
    assert docs == expected
    assert any("☃" in sentence for doc in docs for sentence in doc)


def test_binarized_items_are_the_input_sentences_and_separators(corpus, prepared, fairseq_data):
    from fairseq.data import data_utils

    dictionary, train = fairseq_data
    spm = prepared["spm"]
    expected = parse_documents([corpus["train_a"], corpus["train_b"]])
    n_sentences = sum(len(doc) for doc in expected)
    assert len(train) == n_sentences + len(expected) - 1

    index = 0
    for doc_number, doc in enumerate(expected):
        if doc_number:
            assert train[index].tolist() == [dictionary.eos()]  # the document separator
            index += 1
        for sentence in doc:
            ids = train[index].tolist()
            assert ids[-1] == dictionary.eos() and dictionary.unk() not in ids
            assert len(ids) == len(spm.encode(sentence)) + 1
            assert spm.decode(dictionary.string(ids[:-1]).split(" ")) == sentence
            index += 1

    with open(os.path.join(prepared["destdir"], ".prepare_corpus", "encode-train.json"), encoding="utf-8") as handle:
        summary = json.load(handle)["summary"]
    assert summary["longest_line_pieces"] == max(len(spm.encode(s)) for doc in expected for s in doc)
    assert summary["pieces"] == int(train.sizes.sum()) - len(train)

    valid_docs = parse_documents([corpus["valid"]])
    valid = data_utils.load_indexed_dataset(os.path.join(prepared["destdir"], "valid"), dictionary)
    assert len(valid) == sum(len(doc) for doc in valid_docs) + len(valid_docs) - 1


def token_documents(corpus, train):
    """Document number of every token of the binarized train split, -1 for separators."""
    expected = parse_documents([corpus["train_a"], corpus["train_b"]])
    doc_of_item = []
    for doc_number, doc in enumerate(expected):
        doc_of_item += ([-1] if doc_number else []) + [doc_number] * len(doc)
    return np.repeat(np.array(doc_of_item), train.sizes)


@pytest.mark.parametrize("block_size", [31, 127])
def test_complete_doc_blocks_never_cross_a_document(corpus, fairseq_data, block_size):
    from fairseq.data import TokenBlockDataset

    dictionary, train = fairseq_data
    blocks = TokenBlockDataset(
        train, train.sizes, block_size, pad=dictionary.pad(), eos=dictionary.eos(), break_mode="complete_doc"
    )
    token_doc = token_documents(corpus, train)
    covered = np.zeros(len(token_doc), dtype=int)
    for start, end in blocks.slice_indices:
        docs_in_block = set(token_doc[start:end].tolist())
        assert len(docs_in_block) == 1 and -1 not in docs_in_block
        covered[start:end] += 1
    # Every sentence token lands in exactly one block; separators in none.
    assert np.array_equal(covered, (token_doc != -1).astype(int))


def test_none_blocks_have_fixed_size_and_cross_documents(corpus, fairseq_data):
    from fairseq.data import TokenBlockDataset

    dictionary, train = fairseq_data
    block_size = 127
    blocks = TokenBlockDataset(
        train, train.sizes, block_size, pad=dictionary.pad(), eos=dictionary.eos(), break_mode="none"
    )
    total = int(train.sizes.sum())
    assert len(blocks) == -(-total // block_size)
    assert all(len(blocks[i]) == block_size for i in range(len(blocks) - 1))
    assert len(blocks[len(blocks) - 1]) == total - block_size * (len(blocks) - 1)
    token_doc = token_documents(corpus, train)
    crossing = [len(set(token_doc[s:e].tolist()) - {-1}) > 1 for s, e in blocks.slice_indices]
    assert sum(crossing) > len(blocks) // 2


def test_killed_run_leaves_no_final_outputs_and_the_next_run_resumes(prepared):
    after_kill, after_finish = prepared["after_kill"], prepared["after_finish"]
    for name in BINARIZED:
        assert name not in after_kill
    assert os.path.join(".prepare_corpus", "binarize.json") not in after_kill
    # The finishing run reused every step the killed run had completed ...
    for path in ("spm.model", "encoded/train.txt", "encoded/valid.txt", ".prepare_corpus/encode-valid.json"):
        assert after_finish[path] == after_kill[path]
    log = prepared["finished"].stderr
    assert "spm: already done, skipped" in log and "binarize: running" in log
    # ... and left nothing temporary behind.
    assert sorted(p for p in after_finish if p.startswith(".prepare_corpus")) == sorted(
        os.path.join(".prepare_corpus", f"{step}.json") for step in STEPS
    )


def test_rerun_skips_every_step_and_changes_nothing(prepared):
    log = prepared["rerun"].stderr
    for step in STEPS:
        assert f"{step}: already done, skipped" in log
    assert "running" not in log
    assert prepared["after_rerun"] == prepared["after_finish"]


def test_failed_encoding_leaves_no_output_and_a_fixed_input_resumes(corpus, prepared, tmp_path):
    valid, destdir = tmp_path / "valid.txt", tmp_path / "bin"
    good_lines = ["A fine first sentence.", "", "Another fine sentence.", "Still fine here."]
    valid.write_bytes(("\n".join(good_lines) + "\n").encode("utf-8") + b"Broken \xff line\n")
    model = os.path.join(prepared["destdir"], "spm.model")
    args = ["--train", corpus["train_b"], "--valid", valid, "--destdir", destdir, "--spm-model", model]

    failed = run_script("prepare_corpus.py", *args, "--workers", "2")
    assert failed.returncode == 1
    last = failed.stderr.strip().splitlines()[-1]
    assert last.startswith("fairseq_tokendrop: error:")
    assert f"{valid}: line {len(good_lines) + 1} is not valid UTF-8" in last
    files = snapshot(destdir)
    assert os.path.join("encoded", "train.txt") in files
    assert os.path.join("encoded", "valid.txt") not in files
    assert os.path.join(".prepare_corpus", "encode-valid.json") not in files
    assert not any(".tmp" in path for path in files)
    with open(destdir / "spm.model", "rb") as copied, open(model, "rb") as original:
        assert copied.read() == original.read()

    valid.write_text("\n".join(good_lines) + "\n", encoding="utf-8")
    resumed = run_script("prepare_corpus.py", *args, "--workers", "2")
    assert resumed.returncode == 0, resumed.stderr
    assert "encode-train: already done, skipped" in resumed.stderr
    assert "encode-valid: running" in resumed.stderr and "binarize: running" in resumed.stderr
    assert snapshot(destdir)[os.path.join("encoded", "train.txt")] == files[os.path.join("encoded", "train.txt")]
    decoded = [
        prepared["spm"].decode(line.split()) if line else ""
        for line in (destdir / "encoded" / "valid.txt").read_text(encoding="utf-8").splitlines()
    ]
    assert decoded == good_lines


@pytest.mark.parametrize("case", ["missing", "empty", "unreadable", "directory", "destdir_not_writable",
                                  "vocab_too_big"])
def test_bad_inputs_give_one_clear_error_naming_the_path(corpus, tmp_path, case):
    train, valid, destdir = corpus["train_b"], corpus["valid"], tmp_path / "bin"
    extra = []
    if case == "missing":
        train = named = tmp_path / "no_such_file.txt"
    elif case == "empty":
        valid = named = tmp_path / "blank.txt"
        valid.write_text("\n   \n\t\n\n", encoding="utf-8")
    elif case == "unreadable":
        # A regular file whose read fails (EIO at offset 0), for root too, unlike a chmod 000 file.
        train = named = "/proc/self/mem"
    elif case == "directory":
        train = named = tmp_path
    elif case == "destdir_not_writable":
        blocker = tmp_path / "a_file"
        blocker.write_text("x")
        destdir = named = blocker / "bin"
    else:
        train = named = tmp_path / "tiny.txt"
        train.write_text("Just one small sentence.\n", encoding="utf-8")
        extra = ["--vocab-size", "5000"]
    result = run_script("prepare_corpus.py", "--train", train, "--valid", valid, "--destdir", destdir, *extra)
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("fairseq_tokendrop: error:") and str(named) in last
    assert "Traceback" not in result.stderr
    if case != "vocab_too_big":
        assert not os.path.exists(destdir / "spm.model")


@pytest.fixture(scope="module")
def stdlib_corpora(tmp_path_factory):
    outputs = []
    for attempt in range(2):
        out_dir = tmp_path_factory.mktemp(f"stdlib{attempt}")
        result = run_script("make_stdlib_corpus.py", "--out-dir", out_dir, "--max-docs", 60, "--valid-fraction", 0.25)
        assert result.returncode == 0, result.stderr
        files = {split: (out_dir / f"{split}.txt").read_text(encoding="utf-8") for split in ("train", "valid")}
        outputs.append((files, result.stdout))
    return outputs


def test_stdlib_corpus_is_deterministic(stdlib_corpora):
    (first, first_report), (second, second_report) = stdlib_corpora
    assert first == second
    # the reports differ only in the output paths
    counts = [[line.split(" -> ")[0] for line in report.splitlines()[:2]] for report in (first_report, second_report)]
    assert counts[0] == counts[1]


def test_stdlib_corpus_has_one_sentence_per_line_and_blank_line_documents(stdlib_corpora):
    files, report = stdlib_corpora[0]
    counts = {}
    for split, text in files.items():
        assert text.endswith("\n") and not text.startswith("\n") and "\n\n\n" not in text
        docs = [block.split("\n") for block in text.rstrip("\n").split("\n\n")]
        lines = [line for doc in docs for line in doc]
        assert all(line.strip() == line and len(line.split()) >= 4 for line in lines)
        assert not any(">>>" in line for line in lines)
        counts[split] = (len(docs), len(lines), sum(len(line.split()) for line in lines))
    # every 4th of the 60 documents is a validation document
    assert counts["valid"][0] == 15 and counts["train"][0] == 45
    for split, (n_docs, n_sentences, n_words) in counts.items():
        assert f"{split}: {n_docs} docs, {n_sentences} sentences, {n_words} words" in report


def plain_sentence_paragraphs(module):
    """Paragraphs of the docstrings of a module's own public objects that are one plain sentence:
    letters, spaces, a final period."""
    found = set()
    for name in dir(module):
        obj = getattr(module, name)
        doc = getattr(obj, "__doc__", None)
        own = (inspect.isclass(obj) or inspect.isroutine(obj)) and obj.__module__ == module.__name__
        if name.startswith("_") or not own or not isinstance(doc, str):
            continue
        for paragraph in inspect.cleandoc(doc).split("\n\n"):
            words = paragraph.split()
            if len(words) >= 4 and paragraph.endswith(".") and paragraph[0].isupper():
                if all(ch.isalpha() or ch == " " for ch in paragraph[:-1]):
                    found.add(paragraph)
    return found


def test_stdlib_corpus_grows_with_an_installed_package(tmp_path):
    import cycler  # matplotlib's dependency: a small third-party module that is always installed here

    expected = plain_sentence_paragraphs(cycler)
    assert expected, "cycler's docstrings changed: pick another package for this test"
    result = run_script("make_stdlib_corpus.py", "--out-dir", tmp_path, "--packages", "cycler")
    assert result.returncode == 0, result.stderr
    assert "stdlib modules, cycler" in result.stderr
    lines = set()
    for split in ("train", "valid"):
        lines.update((tmp_path / f"{split}.txt").read_text(encoding="utf-8").splitlines())
    assert expected <= lines


@pytest.mark.parametrize("package", ["no_such_package_here", "os.path"])
def test_stdlib_corpus_refuses_a_package_it_cannot_read(tmp_path, package):
    result = run_script("make_stdlib_corpus.py", "--out-dir", tmp_path, "--packages", package)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].endswith(
        f"error: --packages: {package!r} is not an installed top-level package"
    )
    assert not any(tmp_path.iterdir())
