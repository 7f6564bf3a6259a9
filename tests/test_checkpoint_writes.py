"""The plugin's checkpoint writes, and fairseq-train's routed through them: whole or not at all.

A write that fails (here: the kernel's file-size limit in a forked child, EFBIG, the same path through
the code as a full disk's ENOSPC) leaves the old file, no temporary file, and one line. A kill inside
a copy (SIGXFSZ at the same limit) leaves the old file whole where stock fairseq's copy tears it
(``test_fault_injection.py``). End to end, through fairseq-train: ``test_checkpoint_faults.py``.
"""
import inspect
import os
import resource
import signal
import subprocess
import sys

import pytest
import torch
from fairseq import checkpoint_utils
from fairseq.file_io import PathManager

from fairseq_tokendrop.checkpoints import fairseq_saves
from fairseq_tokendrop.checkpoints.checkpoint_io import atomic_copy, atomic_torch_save

from conftest import REPO

LIMIT = 100_000  # bytes: the new file is ~1 MB


def in_a_child(write, limit, kill):
    """Run ``write()`` in a forked child whose files may not pass ``limit`` bytes: with ``kill`` the kernel
    kills it there (SIGXFSZ), else the write fails (EFBIG). Returns what it raised, or the signal."""
    read, written = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        message = b"returned"
        try:
            signal.signal(signal.SIGXFSZ, signal.SIG_DFL if kill else signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
            write()
        except SystemExit as e:
            message = str(e).encode()
        finally:
            os.write(written, message)
            os._exit(0)
    os.close(written)
    _, status = os.waitpid(pid, 0)
    with os.fdopen(read, "rb") as f:
        said = f.read().decode()
    return f"signal {os.WTERMSIG(status)}" if os.WIFSIGNALED(status) else said


@pytest.fixture
def old_file(tmp_path):
    path = tmp_path / "checkpoint_last.pt"
    torch.save({"w": torch.zeros(10)}, path)
    return path, path.read_bytes()


def test_a_failed_save_is_one_line_and_leaves_the_old_file_and_no_temporary(old_file, tmp_path):
    path, before = old_file
    new = {"w": torch.ones(250_000)}
    said = in_a_child(lambda: atomic_torch_save(new, str(path)), LIMIT, kill=False)
    assert said == f"fairseq_tokendrop: error: cannot write {path}: File too large; {path} is as it was"
    assert path.read_bytes() == before and os.listdir(tmp_path) == [path.name]
    source = tmp_path / "checkpoint_1_3.pt"
    torch.save(new, source)
    said = in_a_child(lambda: atomic_copy(str(source), str(path)), LIMIT, kill=False)
    assert said == f"fairseq_tokendrop: error: cannot write {path}: File too large; {path} is as it was"
    assert path.read_bytes() == before and sorted(os.listdir(tmp_path)) == [source.name, path.name]


def test_under_the_installed_writer_fairseqs_copy_killed_midway_leaves_the_old_file_whole(old_file, tmp_path):
    """The copy onto checkpoint_last.pt that stock fairseq makes in place (test_fault_injection.py shows
    it torn) goes through a temporary name once the task has installed the writer."""
    path, before = old_file
    source = tmp_path / "checkpoint_1_3.pt"
    torch.save({"w": torch.ones(250_000)}, source)

    def fairseqs_copy_as_installed():
        fairseq_saves.install()
        assert checkpoint_utils.PathManager.copy(str(source), str(path), overwrite=True)

    assert in_a_child(fairseqs_copy_as_installed, LIMIT, kill=True) == f"signal {signal.SIGXFSZ}"
    assert path.read_bytes() == before
    leftovers = [name for name in os.listdir(tmp_path) if name.startswith(f"{path.name}.tmp-")]
    assert len(leftovers) == 1 and os.path.getsize(tmp_path / leftovers[0]) == LIMIT


def test_the_installed_writer_changes_only_checkpoint_utils_names(tmp_path):
    """In a forked child, so this process keeps fairseq's own functions."""
    def check():
        stock_save = checkpoint_utils.torch_persistent_save
        fairseq_saves.install()
        fairseq_saves.install()  # once per process, however often the task asks
        assert checkpoint_utils.torch_persistent_save is not stock_save
        assert checkpoint_utils.PathManager.copy is not PathManager.copy
        assert checkpoint_utils.PathManager.exists is PathManager.exists  # the rest is fairseq's
        assert checkpoint_utils.PathManager.rename is PathManager.rename
        checkpoint_utils.torch_persistent_save({"w": torch.arange(3.0)}, str(tmp_path / "a.pt"))
        assert torch.equal(torch.load(tmp_path / "a.pt", weights_only=True)["w"], torch.arange(3.0))
        assert os.listdir(tmp_path) == ["a.pt"]  # no FILE.tmp: the plugin's writer wrote it
        raise SystemExit("checked")

    assert in_a_child(check, resource.RLIM_INFINITY, kill=False) == "checked"


def test_fairseq_still_calls_what_the_writer_replaces():
    """The names ``fairseq_saves`` replaces are the ones fairseq's save looks up when it runs."""
    assert list(inspect.signature(checkpoint_utils.torch_persistent_save).parameters) == [
        "obj", "filename", "async_write"]
    assert "PathManager.copy(" in inspect.getsource(checkpoint_utils.save_checkpoint)
    from fairseq.trainer import Trainer
    assert "checkpoint_utils.torch_persistent_save(" in inspect.getsource(Trainer.save_checkpoint)


@pytest.mark.slow
def test_importing_the_plugin_leaves_fairseqs_checkpoint_writes_alone():
    code = ("import fairseq_tokendrop\nfrom fairseq import checkpoint_utils, file_io\n"
            "print(checkpoint_utils.PathManager is file_io.PathManager,"
            " checkpoint_utils.torch_persistent_save.__module__)")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == ["True", "fairseq.checkpoint_utils"]
