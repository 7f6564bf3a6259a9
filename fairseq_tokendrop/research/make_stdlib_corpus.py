"""Build an English pretraining corpus from the docstrings of a Python install.

Every Python install carries about 2 MB of human-written English: the
docstrings of its standard library, plus pydoc's copy of the language
reference (``pydoc_data.topics``, the text ``help("assert")`` shows). This
script turns them into the raw-text layout that ``prepare_corpus.py`` (and
fairseq's ``complete_doc`` packing) expects: one sentence per line, a blank
line between documents, where one docstring (of a module, class, function,
method or property) or one pydoc topic is one document. Code, doctests and
fragments are filtered out; on CPython 3.11 about 1 MB of prose remains
(13,000 sentences in 5,600 documents). It gives demos, smoke tests and CI a
real-language corpus without any download.

A run long enough to see that corpus many times can grow it with
``--packages``: the docstrings of installed third-party packages, read the
same way after the standard library. With the packages of the plugin's own
environment (torch, sympy, numpy, networkx, matplotlib, scikit-learn, scipy)
the corpus grows from 171k to 1.12M words.

Each top-level stdlib module is imported in its own child interpreter
(``python -I``) with stdin closed, stdout redirected and no display, so a
module that prints, crashes or blocks on import cannot spoil the output.
Modules with import-time side effects (``antigravity``, ``this``, GUI
packages) and test packages are never imported.

The output is deterministic for a given Python build: modules, submodules and
members are visited in sorted order, repeated docstrings are kept once, and
every k-th document (k = round(1 / --valid-fraction)) goes to ``valid.txt``.
Both files are written under temporary names and renamed when complete.

Example::

    python scripts/make_stdlib_corpus.py --out-dir corpus/stdlib
    python scripts/make_stdlib_corpus.py --out-dir corpus/big --packages numpy sympy torch
"""

import argparse
import concurrent.futures
import hashlib
import importlib.util
import inspect
import itertools
import json
import os
import re
import subprocess
import sys
import time


# Modules that open windows or browsers, print on import, or only hold tests.
SKIP_TOP_LEVEL = {"antigravity", "this", "idlelib", "tkinter", "turtle", "turtledemo", "test"}
SKIP_SUBMODULES = {"test", "tests", "idle_test", "__main__"}
# One interpreter per top-level module: a hung import is abandoned after this.
CHILD_TIMEOUT_S = 120

MIN_WORDS = 4
MAX_CHARS = 1000
# Prose is mostly letters and spaces; code and tables are not.
MIN_LETTER_FRACTION = 0.8
CODE_MARKERS = (">>>", "->", "==", "!=", "<=", ">=", "{", "}", "__", "()", "\\", "[]", " = ")

SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z(\"'])")
# reST roles such as :func:`name` or :class:`~a.b` keep only their text.
REST_ROLE = re.compile(r":[a-z]+(?::[a-z]+)?:`~?([^`]*)`")
REST_MARKUP = re.compile(r"`+|\*\*?")
FOOTNOTE_REF = re.compile(r"\s*\[\d+\]")
FIELD_LINE = re.compile(r"^:[A-Za-z_ ]+:")


def public_names(names):
    return sorted(n for n in names if not n.startswith("_"))


def public_names_items(namespace):
    return [(key, namespace[key]) for key in public_names(namespace)]


def iter_module_names(top):
    """Yield ``top`` and its public, non-test submodules, depth first, sorted."""
    import importlib
    import pkgutil

    try:
        module = importlib.import_module(top)
    except (Exception, SystemExit):
        return
    yield module
    path = getattr(module, "__path__", None)
    if path is None:
        return
    subs = {info.name for info in pkgutil.iter_modules(path)}
    for name in public_names(subs - SKIP_SUBMODULES):
        yield from iter_module_names(f"{top}.{name}")


def belongs_to(obj, module_name):
    """True for objects defined in this module or in a private helper it re-exports.

    Public objects of ``io`` or ``collections`` live in ``_io`` or ``_collections``,
    which are never visited themselves; a re-export between public modules is
    skipped here and the repeats that remain are removed later by text.
    """
    owner = getattr(obj, "__module__", None) or ""
    return owner == module_name or owner.startswith("_")


def raw_docstring(obj):
    # __doc__ rather than inspect.getdoc: getdoc copies a base class's docstring
    # into every subclass and override, which only makes duplicates.
    doc = getattr(obj, "__doc__", None)
    return inspect.cleandoc(doc) if isinstance(doc, str) else ""


def module_docstrings(module):
    """Yield the docstrings of a module and of its public classes, functions and methods."""
    yield raw_docstring(module)
    for _, obj in public_names_items(vars(module)):
        if not (inspect.isclass(obj) or inspect.isroutine(obj)) or not belongs_to(obj, module.__name__):
            continue
        yield raw_docstring(obj)
        if inspect.isclass(obj):
            for _, member in public_names_items(vars(obj)):
                member = getattr(member, "__func__", member)  # staticmethod, classmethod
                if inspect.isroutine(member) or isinstance(member, property):
                    yield raw_docstring(member)


def collect_child(top):
    """Child-process entry: print the docstrings of one top-level module as JSON."""
    import warnings

    warnings.simplefilter("ignore")
    # Anything the imported modules print goes to stderr; the JSON result goes
    # to the real stdout, which only this function writes to.
    result = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    docs = []
    if top == "pydoc_data":
        # pydoc's copy of the language reference (what help("assert") shows):
        # no docstrings, but the largest block of English prose in the stdlib.
        from pydoc_data.topics import topics

        docs.extend(topics[key] for key in sorted(topics))
    for module in iter_module_names(top):
        try:
            docs.extend(doc for doc in module_docstrings(module) if doc)
        except Exception:  # a broken attribute lookup costs one module, not the run
            continue
    json.dump(docs, result)
    result.close()


def run_child(top):
    env = {key: value for key, value in os.environ.items() if key not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env["BROWSER"] = "true"  # any accidental webbrowser.open() runs /bin/true
    try:
        proc = subprocess.run(
            [sys.executable, "-I", os.path.abspath(__file__), "--child", top],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            env=env,
            timeout=CHILD_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        return top, None
    docs = json.loads(proc.stdout.decode("utf-8")) if proc.returncode == 0 else []
    return top, docs or None


def clean_inline_markup(text):
    return FOOTNOTE_REF.sub("", REST_MARKUP.sub("", REST_ROLE.sub(r"\1", text)))


def looks_like_prose(sentence):
    words = sentence.split()
    if len(words) < MIN_WORDS or len(sentence) > MAX_CHARS:
        return False
    if not (sentence[0].isupper() or sentence[0] in "\"'("):
        return False
    if any(marker in sentence for marker in CODE_MARKERS):
        return False
    letters = sum(ch.isalpha() or ch == " " for ch in sentence)
    return letters >= MIN_LETTER_FRACTION * len(sentence)


def split_sentences(docstring):
    """Return the prose sentences of a docstring, one string each."""
    sentences = []
    for paragraph in re.split(r"\n\s*\n", docstring):
        lines = [line for line in paragraph.splitlines() if line.strip()]
        # Doctest blocks and literal (indented) blocks are code, not prose.
        if not lines or any(line.lstrip().startswith((">>>", "...")) for line in lines):
            continue
        if lines[0][:1].isspace():
            continue
        prose = [line for line in lines if not FIELD_LINE.match(line.strip())]
        text = " ".join(" ".join(prose).split())
        text = clean_inline_markup(text).replace("::", ":")
        sentences.extend(s for s in SENTENCE_END.split(text) if looks_like_prose(s))
    return sentences


def iter_documents(tops, jobs, stats):
    """Yield each new docstring's sentences, in sorted module order, repeats dropped."""
    seen = set()
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=jobs)
    try:
        # map() returns results in submission order, so parallelism keeps determinism.
        for done, (top, docs) in enumerate(pool.map(run_child, tops), start=1):
            if docs is None:
                stats["failed_modules"].append(top)
                docs = []
            for docstring in docs:
                digest = hashlib.sha1(docstring.encode("utf-8")).digest()
                if digest in seen:
                    continue
                seen.add(digest)
                sentences = split_sentences(docstring)
                if sentences:
                    yield sentences
            if done % 20 == 0 or done == len(tops):
                print(f"  {done}/{len(tops)} top-level modules read", file=sys.stderr, flush=True)
    finally:
        # With --max-docs the consumer stops early: do not import the remaining modules.
        pool.shutdown(wait=True, cancel_futures=True)


def write_corpus(out_dir, documents, every_kth):
    """Write documents to train.txt / valid.txt atomically; return per-split counts."""
    counts = {split: {"docs": 0, "sentences": 0, "words": 0, "bytes": 0} for split in ("train", "valid")}
    paths = {split: os.path.join(out_dir, f"{split}.txt") for split in counts}
    tmp_paths = {split: f"{path}.tmp.{os.getpid()}" for split, path in paths.items()}
    files = {split: open(tmp, "w", encoding="utf-8", newline="\n") for split, tmp in tmp_paths.items()}
    try:
        for index, sentences in enumerate(documents):
            split = "valid" if index % every_kth == every_kth - 1 else "train"
            out, count = files[split], counts[split]
            if count["docs"]:
                out.write("\n")
            text = "".join(s + "\n" for s in sentences)
            out.write(text)
            count["docs"] += 1
            count["sentences"] += len(sentences)
            count["words"] += sum(len(s.split()) for s in sentences)
            count["bytes"] += len(text.encode("utf-8"))
        for out in files.values():
            out.close()
        for split in counts:
            os.replace(tmp_paths[split], paths[split])
    finally:
        for split, out in files.items():
            out.close()
            if os.path.exists(tmp_paths[split]):
                os.remove(tmp_paths[split])
    return counts


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description="Build a one-sentence-per-line English corpus (blank line between documents) "
        "from the docstrings of the Python standard library (and of installed packages, with --packages).",
        epilog="Output: OUT_DIR/train.txt and OUT_DIR/valid.txt, ready for scripts/prepare_corpus.py.",
    )
    parser.add_argument("--out-dir", help="directory for train.txt and valid.txt, created if missing (required)")
    parser.add_argument(
        "--valid-fraction",
        type=float,
        default=0.05,
        help="share of documents sent to valid.txt: every k-th document, k = round(1/F) (default: %(default)s)",
    )
    parser.add_argument(
        "--packages",
        nargs="+",
        default=[],
        metavar="PACKAGE",
        help="also read these installed top-level packages, after the standard library, in this order "
        "(default: none)",
    )
    parser.add_argument("--max-docs", type=int, default=None, help="stop after this many documents (default: all)")
    parser.add_argument(
        "--jobs",
        type=int,
        default=os.cpu_count() or 1,
        help="child interpreters importing modules at once (default: %(default)s, the CPU count)",
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is None:
        if args.out_dir is None:
            parser.error("the following arguments are required: --out-dir")
        if not 0.0 < args.valid_fraction <= 0.5:
            parser.error("--valid-fraction must be in (0, 0.5]")
        every_kth = max(1, round(1 / args.valid_fraction))
        if args.max_docs is not None and args.max_docs < every_kth:
            parser.error(f"--max-docs must be at least {every_kth}, or valid.txt would get no document")
        if args.jobs < 1:
            parser.error("--jobs must be at least 1")
        for package in args.packages:
            if "." in package or importlib.util.find_spec(package) is None:
                parser.error(f"--packages: {package!r} is not an installed top-level package")
    return args


def fail(message: str):
    """End with the plugin's one-line error. Imported here, not at the top: the child interpreters run
    this file as a script (``-I``), where the package's relative imports do not resolve."""
    from ..errors import TokendropError

    raise TokendropError(message)


def main(argv=None):
    args = parse_args(argv)
    if args.child is not None:
        collect_child(args.child)
        return
    if not hasattr(sys, "stdlib_module_names"):
        fail("make_stdlib_corpus needs Python 3.10 or newer (sys.stdlib_module_names)")
    try:
        os.makedirs(args.out_dir, exist_ok=True)
    except OSError as err:
        fail(f"cannot create output dir {args.out_dir}: {err}")

    stdlib = [n for n in public_names(sys.stdlib_module_names) if n not in SKIP_TOP_LEVEL]
    packages = [package for package in dict.fromkeys(args.packages) if package not in stdlib]
    tops = stdlib + packages
    every_kth = max(1, round(1 / args.valid_fraction))
    stats = {"failed_modules": []}
    start = time.time()
    print(
        f"make_stdlib_corpus: reading docstrings of {len(stdlib)} stdlib modules"
        + "".join(f", {package}" for package in packages),
        file=sys.stderr,
    )
    documents = iter_documents(tops, args.jobs, stats)
    try:
        counts = write_corpus(args.out_dir, itertools.islice(documents, args.max_docs), every_kth)
    except OSError as err:
        fail(f"cannot write to {args.out_dir}: {err}")
    finally:
        documents.close()
    if stats["failed_modules"]:
        print(
            "make_stdlib_corpus: no docstrings from (not importable here, or undocumented): "
            + " ".join(stats["failed_modules"]),
            file=sys.stderr,
        )
    for split, c in counts.items():
        print(
            f"{split}: {c['docs']} docs, {c['sentences']} sentences, {c['words']} words, "
            f"{c['bytes'] / 1e6:.2f} MB -> {os.path.join(args.out_dir, split + '.txt')}"
        )
    print(f"done in {time.time() - start:.1f}s (Python {sys.version.split()[0]})")


if __name__ == "__main__":
    main()
