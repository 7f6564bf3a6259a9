"""scripts/verify_checksums.py on files made here and a list in MLPerf's table form (seed 004).

Expected md5s come from hashing each file's bytes whole with hashlib; the
script streams files in chunks, and one file spans several chunks.
"""
import hashlib
import os
import subprocess
import sys

import pytest

from conftest import REPO

pytestmark = pytest.mark.slow  # starts processes: not in the fast tier (tests/run.sh --fast)

SCRIPT = REPO / "scripts" / "verify_checksums.py"


def run(*args):
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True)


def table(rows):
    """The list as seed 004 prints it (header, alignment row, data rows, an ellipsis row), amid other text."""
    lines = ["### Files in ./results directory:", "",
             "| File                | Size (bytes) | MD5                              |",
             "|---------------------|  ----------: |----------------------------------|"]
    lines += [f"| {name} | {size} | {md5} |" for name, size, md5 in rows]
    lines += ["| ... | | |", "", "| Key | Type | Value |", "| input_ids | int64 | Input token ids |",
              "```shell", "--boot-disk-size 2048 \\", "```"]  # the rest of the document is skipped
    return "\n".join(lines) + "\n"


@pytest.fixture
def parts(tmp_path):
    """Four files; the big one is over the script's 4 MiB read size."""
    data = tmp_path / "results"
    data.mkdir()
    contents = {"eval.txt": b"a sentence.\n\nanother one.\n", "part-00000-of-00500": os.urandom(9 << 20),
                "part-00001-of-00500": b"x" * 1000, "part-00002-of-00500": b"y" * 1000}
    for name, content in contents.items():
        (data / name).write_bytes(content)
    truth = [(name, len(c), hashlib.md5(c).hexdigest()) for name, c in contents.items()]
    return data, truth


def test_a_matching_directory_passes(tmp_path, parts):
    data, truth = parts
    listing = tmp_path / "checksums.md"
    listing.write_text(table([(n, f"{s:,}", m) for n, s, m in truth]))  # sizes with separators, as seed 004's stats
    proc = run(listing, data, "--workers", "2")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout == f"{len(truth)} of {len(truth)} files OK\n"
    assert "MiB checked" in proc.stderr


def test_each_missing_file_size_and_md5_mismatch_is_reported(tmp_path, parts):
    data, truth = parts
    (data / "part-00001-of-00500").write_bytes(b"x" * 999 + b"z")  # same size, other bytes
    (data / "part-00002-of-00500").write_bytes(b"y" * 1001)
    rows = truth + [("part-00499-of-00500", 21873644, "b3b087ad24e3770d879a351664cebc5a")]
    listing = tmp_path / "checksums.txt"
    listing.write_text(table(rows))
    proc = run(listing, data, "--workers", "1")
    assert proc.returncode == 1
    expected_md5 = dict((n, m) for n, _, m in truth)["part-00001-of-00500"]
    got_md5 = hashlib.md5(b"x" * 999 + b"z").hexdigest()
    assert proc.stdout.splitlines() == [
        f"MD5 MISMATCH part-00001-of-00500: {got_md5}, expected {expected_md5}",
        "SIZE MISMATCH part-00002-of-00500: 1001 bytes, expected 1000",
        "MISSING part-00499-of-00500",
        "2 of 5 files OK",
    ]


def test_plain_rows_are_read_and_a_bad_row_is_named(tmp_path, parts):
    data, truth = parts
    listing = tmp_path / "list"
    listing.write_text("".join(f"{n} {s} {m}\n" for n, s, m in truth))
    assert run(listing, data).returncode == 0
    listing.write_text(table(truth[:1]) + "| part-00001-of-00500 | 1000 | not-an-md5 |\n")
    proc = run(listing, data)
    assert proc.returncode == 1
    assert proc.stderr.strip() == f"fairseq_tokendrop: error: {listing}: line 13: 'not-an-md5' is not an md5 (32 hex digits)"
