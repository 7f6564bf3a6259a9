"""Check downloaded files against a checksum list of (file, size, md5).

The list is the table MLPerf BERT ships with its Wikipedia parts (training
``language_model/tensorflow/bert/dataset.md``)::

    | File                | Size (bytes) | MD5                              |
    |---------------------|  ----------: |----------------------------------|
    | part-00000-of-00500 | 27150902 | a64a7c31eff5cd38ae6d94f7a6229dab |

Plain ``FILE SIZE MD5`` lines are read too, and other lines skipped, so the
whole document the table comes in can be given. Header, separator and ``...``
rows are skipped, and sizes may carry thousands separators; a table row with
a size but no md5 (or the reverse) is an error. Every missing file, size mismatch and md5 mismatch is reported on
its own line; the exit status is 1 if there was any. A file of the wrong size
is not hashed (its md5 cannot match). Files are hashed in chunks by several
processes, with progress for big ones. Standard library only, so it runs on a
download box without torch or fairseq.

Example::

    python scripts/verify_checksums.py checksums.md results/ --workers 8
"""
import argparse
import hashlib
import multiprocessing
import os
import re
import sys
import time

from fairseq_tokendrop.errors import TokendropError

CHUNK = 1 << 22


MD5 = re.compile(r"^[0-9a-fA-F]{32}$")


def parse_checksum_list(path: str):
    """[(file, size, md5)] of the list's data rows."""
    entries = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            text = line.strip()
            if not text:
                continue
            in_table = text.startswith("|")
            cells = [c.strip() for c in text.strip("|").split("|")] if in_table else text.split()
            if len(cells) != 3 or cells[0] in ("...", "") or set(cells[1]) <= set("-: "):
                continue  # ellipsis or separator row
            name, size, md5 = cells
            size_ok, md5_ok = size.replace(",", "").isdigit(), bool(MD5.match(md5))
            if not (size_ok and md5_ok) and (not in_table or not (size_ok or md5_ok)):
                continue  # prose, a header row, or a row of some other three-column table
            if not md5_ok:
                raise TokendropError(f"{path}: line {number}: {md5!r} is not an md5 (32 hex digits)")
            if not size_ok:
                raise TokendropError(f"{path}: line {number}: size {size!r} is not a number of bytes")
            entries.append((name, int(size.replace(",", "")), md5.lower()))
    if not entries:
        raise TokendropError(f"{path}: no (file, size, md5) rows found")
    return entries


def md5_of(job):
    """md5 hex digest of a file, read in chunks; reports progress on files above ``report_bytes``."""
    path, size, report_bytes = job
    digest = hashlib.md5()
    done, last = 0, time.time()
    with open(path, "rb") as handle:
        while True:
            chunk = handle.read(CHUNK)
            if not chunk:
                break
            digest.update(chunk)
            done += len(chunk)
            if size >= report_bytes and time.time() - last > 10:
                last = time.time()
                print(f"verify_checksums: {path}: {100 * done / size:.0f}% hashed", file=sys.stderr, flush=True)
    return digest.hexdigest()


def verify(entries, directory: str, workers: int, report_bytes: int):
    """Problem lines, in list order."""
    problems, to_hash = [], []
    for name, size, md5 in entries:
        path = os.path.join(directory, name)
        if not os.path.isfile(path):
            problems.append((name, f"MISSING {name}"))
        elif os.path.getsize(path) != size:
            problems.append((name, f"SIZE MISMATCH {name}: {os.path.getsize(path)} bytes, expected {size}"))
        else:
            to_hash.append((name, path, size, md5))
    total = sum(size for _, _, size, _ in to_hash)
    jobs = [(path, size, report_bytes) for _, path, size, _ in to_hash]
    hashed, start = 0, time.time()
    with multiprocessing.Pool(max(1, min(workers, len(jobs) or 1))) as pool:
        for (name, _, size, md5), got in zip(to_hash, pool.imap(md5_of, jobs)):
            hashed += size
            if got != md5:
                problems.append((name, f"MD5 MISMATCH {name}: {got}, expected {md5}"))
            print(f"verify_checksums: {hashed / 2**20:,.0f} of {total / 2**20:,.0f} MiB checked "
                  f"({time.time() - start:.0f}s)", file=sys.stderr, flush=True)
    order = {name: i for i, (name, _, _) in enumerate(entries)}
    return [line for name, line in sorted(problems, key=lambda p: order[p[0]])]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checksums", help="the checksum list: a markdown table or rows of FILE SIZE MD5")
    parser.add_argument("directory", help="where the listed files are")
    parser.add_argument("--workers", type=int, default=os.cpu_count(), help="hashing processes (default: all cores)")
    parser.add_argument("--progress-mb", type=int, default=1024,
                        help="report hashing progress inside files of at least this many MiB (default: %(default)s)")
    args = parser.parse_args(argv)
    if args.workers < 1:
        parser.error("--workers must be >= 1")
    if not os.path.isdir(args.directory):
        raise TokendropError(f"{args.directory}: not a directory")
    entries = parse_checksum_list(args.checksums)
    problems = verify(entries, args.directory, args.workers, args.progress_mb << 20)
    for line in problems:
        print(line)
    print(f"{len(entries) - len(problems)} of {len(entries)} files OK")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
