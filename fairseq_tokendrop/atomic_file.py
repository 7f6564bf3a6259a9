"""Files and directories that appear whole or not at all.

Everything the plugin and its scripts publish (checkpoints, dictionaries,
metadata, reports) is written under a temporary name in the same directory and
renamed into place (a directory: built under a temporary name, then renamed):
``os.replace`` is atomic within a file system, so a reader
or a killed run never sees a half-written file under the final name.
"""
import contextlib
import os
import shutil
from typing import Iterator


@contextlib.contextmanager
def atomic_path(path: str) -> Iterator[str]:
    """Yield a temporary name next to ``path``; it becomes ``path`` only if the block succeeds."""
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


@contextlib.contextmanager
def atomic_directory(path: str) -> Iterator[str]:
    """Yield a new empty directory next to ``path``; it becomes ``path`` only if the block succeeds.

    An existing ``path`` is replaced: moved aside, the new one renamed in, the old one removed, so
    ``path`` holds the old directory or the new one, each whole, and never a mix.
    """
    path = os.path.normpath(path)
    tmp, old = f"{path}.tmp-{os.getpid()}", f"{path}.old-{os.getpid()}"
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
