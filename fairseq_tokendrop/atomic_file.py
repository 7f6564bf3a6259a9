"""Files and directories that appear whole or not at all.

Everything the plugin and its scripts publish (checkpoints, dictionaries,
metadata, reports) is written under a temporary name in the same directory and
renamed into place (a directory: built under a temporary name, then renamed):
``os.replace`` is atomic within a file system, so a reader
or a killed run never sees a half-written file under the final name. A file is
flushed to the disk (``fsync``) before its rename and the directory after it, so
that after a power loss the final name holds the old file or the whole new one:
without the first, a file system may persist the rename before the data.
"""
import contextlib
import os
import shutil
from typing import Iterator


@contextlib.contextmanager
def atomic_path(path: str) -> Iterator[str]:
    """Yield a temporary name next to ``path``; it becomes ``path`` only if the block succeeds."""
    tmp = temporary_name(path)
    try:
        yield tmp
        fsync(tmp)
        os.replace(tmp, path)
        fsync(os.path.dirname(os.path.abspath(path)))
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def temporary_name(path: str) -> str:
    """Where :func:`atomic_path` writes ``path`` before the rename: ``PATH.tmp-PID``."""
    return f"{path}.tmp-{os.getpid()}"


def fsync(path: str) -> None:
    """Flush a file's or a directory's data to the disk (through any descriptor of it, as POSIX has it)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_directory(path: str) -> Iterator[str]:
    """Yield a new empty directory next to ``path``; it becomes ``path`` only if the block succeeds.

    An existing ``path`` is replaced: moved aside, the new one renamed in, the old one removed, so
    ``path`` holds the old directory or the new one, each whole, and never a mix.
    """
    path = os.path.normpath(path)
    tmp, old = temporary_name(path), f"{path}.old-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    try:
        yield tmp
        if os.path.isdir(path):
            os.replace(path, old)
        os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
