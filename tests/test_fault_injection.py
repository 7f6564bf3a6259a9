"""A training run killed partway, and what stock fairseq's checkpoint writes guarantee.

How ``fairseq.checkpoint_utils.save_checkpoint`` writes (fairseq main, mid-2025):
the first file due (``checkpoint_E_U.pt`` with ``--save-interval-updates``,
else the epoch or best checkpoint, else ``checkpoint_last.pt`` itself) goes
through ``torch_persistent_save``: ``FILE.tmp``, then ``os.rename`` (atomic);
every other file due, ``checkpoint_last.pt`` included, is then
``PathManager.copy``, i.e. ``shutil.copyfile`` onto the old file, which
truncates it first (not atomic). Under the plugin's task fairseq-train writes
both through the plugin's atomic writer instead (``FILE.tmp-PID``, then a
rename; ``checkpoints/fairseq_saves.py``); the kills at every point of a save
are in ``test_checkpoint_faults.py``.
"""
import glob
import os
import resource
import signal
import subprocess
import sys
import time

import pytest
import torch
from fairseq import checkpoint_utils
from fairseq.file_io import PathManager

from conftest import REPO, logged, run_cli, train_flags
from test_fairseq_train import saved_scores

UPDATES = 10
KILL_AFTER = 4  # checkpoint_1_4.pt must exist, then the kill lands inside the next save
# A wider FFN makes each checkpoint ~7 MB, so a save lasts long enough to be caught in progress.
FLAGS = ["--max-update", UPDATES, "--save-interval-updates", "1", "--disable-validation",
         "--token-drop", "0.5", "--encoder-ffn-embed-dim", "2048"]


def interval_checkpoint(save_dir, update):
    return save_dir / f"checkpoint_1_{update}.pt"


def kill_inside_a_save(cmd, save_dir, after_update):
    """Start training; once ``after_update`` is saved, SIGKILL it while a later save's ``.tmp`` is open.

    The process is frozen with SIGSTOP first and the ``.tmp`` looked for again:
    only if it is still there (the rename has not happened) is the freeze
    inside ``torch.save``; otherwise it is let go until the next save.
    Returns the update whose save was cut short.
    """
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 240
        update = after_update + 1
        while not interval_checkpoint(save_dir, after_update).exists():
            assert proc.poll() is None and time.time() < deadline, "training ended before the kill"
            time.sleep(0.005)
        while update <= UPDATES:
            tmp = f"{interval_checkpoint(save_dir, update)}.tmp-{proc.pid}"  # the plugin's writer names it so
            while not os.path.exists(tmp) and not interval_checkpoint(save_dir, update).exists():
                assert proc.poll() is None and time.time() < deadline, "training ended before the kill"
                time.sleep(0.0005)  # a save lasts milliseconds; do not take a core from training
            proc.send_signal(signal.SIGSTOP)
            if os.path.exists(tmp):
                proc.kill()
                return update
            proc.send_signal(signal.SIGCONT)
            update += 1
        raise AssertionError("no save was caught in progress")
    finally:
        proc.kill()
        proc.wait()


def final_state(save_dir, stdout):
    path = save_dir / "checkpoint_last.pt"
    return torch.load(path, weights_only=True)["model"], saved_scores(path), logged(stdout)[-1]


def train_command(data_bin, save_dir):
    return [sys.executable, "-m", "fairseq_cli.train", *map(str, train_flags(data_bin, save_dir, *FLAGS))]


@pytest.mark.slow
def test_a_run_killed_inside_a_save_resumes_to_the_uninterrupted_state(data_bin, tmp_path):
    # The uninterrupted run goes alongside the killed one (two cores):
    # the freeze-and-look kill does not depend on an idle machine.
    straight = subprocess.Popen(train_command(data_bin, tmp_path / "straight"), cwd=REPO,
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    save_dir = tmp_path / "killed"
    try:
        cut = kill_inside_a_save(train_command(data_bin, save_dir), save_dir, KILL_AFTER)
    finally:
        straight_stdout = straight.communicate()[0]
    assert straight.returncode == 0

    # Every file under a final name is complete; the one cut short exists only as a temporary file.
    assert not interval_checkpoint(save_dir, cut).exists()
    assert glob.glob(f"{interval_checkpoint(save_dir, cut)}.tmp*")
    for update in range(1, cut):
        state = checkpoint_utils.load_checkpoint_to_cpu(str(interval_checkpoint(save_dir, update)))
        assert state["optimizer_history"][-1]["num_updates"] == update
    # checkpoint_last.pt is a whole copy of the newest complete checkpoint.
    last = save_dir / "checkpoint_last.pt"
    assert last.read_bytes() == interval_checkpoint(save_dir, cut - 1).read_bytes()

    resumed = run_cli("fairseq_cli.train", *train_flags(data_bin, save_dir, *FLAGS))
    assert f"Loaded checkpoint {last}" in resumed.stdout + resumed.stderr
    assert [r["num_updates"] for r in logged(resumed.stdout)] == [str(n) for n in range(cut, UPDATES + 1)]

    want_params, want_scores, want_log = final_state(tmp_path / "straight", straight_stdout)
    got_params, got_scores, got_log = final_state(save_dir, resumed.stdout)
    assert want_params.keys() == got_params.keys()
    for key in want_params:
        assert torch.equal(want_params[key], got_params[key]), key
    assert torch.equal(want_scores, got_scores)
    assert want_log["num_updates"] == got_log["num_updates"] == str(UPDATES)
    assert want_log["loss"] == got_log["loss"]


def killed_by_file_size_limit(write, limit):
    """Run ``write()`` in a forked child; the kernel kills it (SIGXFSZ) when a file it writes passes ``limit`` bytes."""
    pid = os.fork()
    if pid == 0:
        try:
            signal.signal(signal.SIGXFSZ, signal.SIG_DFL)  # Python starts with it ignored
            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # no core file
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
            write()
        finally:
            os._exit(0)
    _, status = os.waitpid(pid, 0)
    return os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGXFSZ


@pytest.fixture
def two_checkpoints(tmp_path):
    """An old and a new state of ~1 MB each, as torch.save writes them."""
    old = {"model": {"w": torch.zeros(250_000)}, "num_updates": 1}
    new = {"model": {"w": torch.ones(250_000)}, "num_updates": 2}
    torch.save(new, tmp_path / "checkpoint_1_2.pt")
    return old, new, tmp_path / "checkpoint_1_2.pt", tmp_path / "checkpoint_last.pt"


def test_a_kill_inside_torch_persistent_save_leaves_the_old_file_whole(two_checkpoints):
    old, new, newest, last = two_checkpoints
    torch.save(old, last)
    limit = newest.stat().st_size // 2
    assert killed_by_file_size_limit(lambda: checkpoint_utils.torch_persistent_save(new, str(last)), limit)
    assert torch.equal(torch.load(last, weights_only=True)["model"]["w"], old["model"]["w"])
    assert os.path.getsize(f"{last}.tmp") == limit


def test_a_kill_inside_the_copy_to_checkpoint_last_leaves_it_torn(two_checkpoints):
    """What stock fairseq does not guarantee: checkpoint_last.pt is overwritten in place.

    The torn file fails to load (a torch zip ends in its central directory),
    so it is never read as a wrong state; the newest ``checkpoint_E_U.pt`` is
    whole and resumes with ``--restore-file``.
    """
    old, new, newest, last = two_checkpoints
    torch.save(old, last)
    limit = newest.stat().st_size // 2
    assert killed_by_file_size_limit(lambda: PathManager.copy(str(newest), str(last), overwrite=True), limit)
    assert os.path.getsize(last) == limit
    with pytest.raises(RuntimeError, match="zip archive"):
        torch.load(last, weights_only=True)
    assert torch.equal(torch.load(newest, weights_only=True)["model"]["w"], new["model"]["w"])
