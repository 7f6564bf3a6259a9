"""Test-only: ``fairseq-train`` killed at a named point of its checkpoint writes, deterministically.

    python tests/kill_at.py POINT NAME -- ARGS        (i.e. python -m fairseq_cli.train ARGS, killed)

A file-system stub for tests/test_checkpoint_faults.py, installed in this process before fairseq
runs. It watches the opens for writing and the renames of files whose name starts with NAME
(``checkpoint_last.pt``, ``checkpoint_best.pt``; ``interval`` stands for ``checkpoint_E_U.pt``),
which covers how any writer names them (fairseq's ``FILE.tmp``, the plugin's ``FILE.tmp-PID``, or
``FILE`` itself where fairseq copies onto it), and lets the first such event of each kind pass:
that is this process's first save. At the second:

- ``write``: the file may grow to LIMIT bytes, then the kernel kills the process inside the write
  (RLIMIT_FSIZE: SIGXFSZ, which no Python code outlives), a checkpoint being bigger than LIMIT;
- ``rename``: SIGKILL just before the rename onto NAME, its data all written.

Where the event never comes (a writer that never renames onto NAME) the run goes on to its end.
"""
import builtins
import os
import re
import resource
import signal
import sys

LIMIT = 64 * 1024  # bytes: well inside a checkpoint of the tests' model (~0.5 MB)
INTERVAL = re.compile(r"checkpoint_\d+_\d+\.pt")


def matches(path, name) -> bool:
    base = os.path.basename(os.fspath(path))
    if name == "interval":
        return INTERVAL.match(base) is not None
    return base.startswith(name)


def install(point: str, name: str) -> None:
    seen = {"open": 0, "rename": 0}
    real_open, real_rename, real_replace = builtins.open, os.rename, os.replace

    def second(kind: str) -> bool:
        seen[kind] += 1
        return seen[kind] == 2

    def open_(file, mode="r", *args, **kwargs):
        if point == "write" and isinstance(file, (str, os.PathLike)) and "w" in mode and matches(file, name) \
                and second("open"):
            signal.signal(signal.SIGXFSZ, signal.SIG_DFL)  # Python starts with it ignored
            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
            resource.setrlimit(resource.RLIMIT_FSIZE, (LIMIT, resource.RLIM_INFINITY))
        return real_open(file, mode, *args, **kwargs)

    def renamer(real):
        def rename(src, dst, *args, **kwargs):
            if point == "rename" and matches(dst, name) and second("rename"):
                os.kill(os.getpid(), signal.SIGKILL)
            return real(src, dst, *args, **kwargs)
        return rename

    builtins.open = open_
    os.rename, os.replace = renamer(real_rename), renamer(real_replace)


if __name__ == "__main__":
    point, name, dashes, *args = sys.argv[1:]
    assert point in ("write", "rename") and dashes == "--", sys.argv
    install(point, name)
    from fairseq_cli.train import cli_main

    sys.argv = [sys.argv[0], *args]
    cli_main()
