"""Kills and full disks inside stock ``fairseq-train``'s checkpoint saves, and a run started again.

Every save here writes three files (``--save-interval-updates 1`` with validation, and
``--best-checkpoint-metric num_updates`` so that every save also copies onto
``checkpoint_best.pt``): ``checkpoint_1_U.pt`` first, then copies onto ``checkpoint_best.pt``
and ``checkpoint_last.pt``. The kills come at named points through ``kill_at.py`` (a stub of the
file system calls in the killed process, no timing), each in the second save of its process, and
the jobs run one after another with the same fairseq-train arguments, as a requeued job does:

1. during the write of ``checkpoint_1_U.pt``;
2. between that write and its rename;
3. during the copy onto ``checkpoint_best.pt``;
4. during the copy onto ``checkpoint_last.pt``; the test then tears ``checkpoint_last.pt`` as
   stock fairseq's in-place copy would have left it, so the next start must fall back;
5. between the copy onto ``checkpoint_last.pt`` and its rename;

then a last start runs to the end, which must equal an uninterrupted run: parameters, importance
scores, optimizer state and update count. A full disk (a private tmpfs of a chosen size) at the
first save, then at a later one, ends the same way. The uninterrupted run, started again, does nothing.
"""
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import zipfile

import pytest
import torch

from conftest import REPO, logged, run_cli, train_flags
from test_fairseq_train import saved_scores

pytestmark = pytest.mark.slow  # starts processes: not in the fast tier (tests/run.sh --fast)

UPDATES = 10
FLAGS = ["--max-update", UPDATES, "--save-interval-updates", "1", "--token-drop", "0.5",
         "--best-checkpoint-metric", "num_updates", "--maximize-best-checkpoint-metric"]
KILLS = [("write", "interval"), ("rename", "interval"), ("write", "checkpoint_best.pt"),
         ("write", "checkpoint_last.pt"), ("rename", "checkpoint_last.pt")]
KILL_AT = str(REPO / "tests" / "kill_at.py")


def args(data_bin, save_dir):
    return [str(a) for a in train_flags(data_bin, save_dir, *FLAGS)]


@pytest.fixture(scope="module")
def straight(data_bin, tmp_path_factory):
    save_dir = tmp_path_factory.mktemp("straight")
    proc = run_cli("fairseq_cli.train", *args(data_bin, save_dir))
    return dict(save_dir=save_dir, state=final_state(save_dir), stdout=proc.stdout)


def final_state(save_dir):
    """Parameters, scores, optimizer state and update count of ``checkpoint_last.pt``."""
    path = save_dir / "checkpoint_last.pt"
    state = torch.load(path, weights_only=True)
    return dict(params=state["model"], scores=saved_scores(path), optimizer=state["last_optimizer_state"],
                updates=state["optimizer_history"][-1]["num_updates"])


def assert_equal_states(got, want):
    assert got["updates"] == want["updates"] == UPDATES
    assert got["params"].keys() == want["params"].keys()
    for key in want["params"]:
        assert torch.equal(got["params"][key], want["params"][key]), key
    assert torch.equal(got["scores"], want["scores"])
    moments = [(i, k) for i, s in want["optimizer"]["state"].items() for k in s]
    assert moments and len(moments) == sum(len(s) for s in got["optimizer"]["state"].values())
    for i, k in moments:
        assert torch.equal(torch.as_tensor(got["optimizer"]["state"][i][k]),
                           torch.as_tensor(want["optimizer"]["state"][i][k])), (i, k)


def checkpoints(save_dir):
    return sorted(p for p in save_dir.iterdir() if p.name.endswith(".pt"))


def whole(path) -> bool:
    """A complete zip archive whose every record matches its CRC-32, by Python's own zipfile."""
    try:
        with zipfile.ZipFile(path) as archive:
            return archive.testzip() is None
    except zipfile.BadZipFile:
        return False


def temporaries(save_dir):
    return sorted(p.name for p in save_dir.iterdir() if ".pt.tmp" in p.name)


def test_every_kill_inside_a_save_resumes_with_the_same_command_to_the_uninterrupted_state(
        data_bin, tmp_path, straight):
    save_dir = tmp_path / "killed"
    fallbacks = []
    for point, name in KILLS:
        proc = subprocess.run([sys.executable, KILL_AT, point, name, "--", *args(data_bin, save_dir)], cwd=REPO,
                              capture_output=True, text=True, env=dict(os.environ, PYTHONUNBUFFERED="1"))
        assert proc.returncode in (-signal.SIGKILL, -signal.SIGXFSZ), (point, name, proc.returncode,
                                                                      proc.stderr[-3000:])
        fallbacks.append(proc.stdout)
        # every name points at a whole checkpoint; what the kill cut short is a temporary file only
        assert checkpoints(save_dir) and all(whole(p) for p in checkpoints(save_dir)), (point, name)
        assert temporaries(save_dir), (point, name)
        if (point, name) == ("write", "checkpoint_last.pt"):
            # what stock fairseq's copy onto it leaves: a torn file under the final name
            last = save_dir / "checkpoint_last.pt"
            os.truncate(last, last.stat().st_size // 2)
    resumed = run_cli("fairseq_cli.train", *args(data_bin, save_dir))

    # the start after the torn checkpoint_last.pt fell back in one line naming both files
    fell_back = [line for line in fallbacks[-1].splitlines() if "resuming from" in line]
    assert len(fell_back) == 1 and str(save_dir / "checkpoint_last.pt") in fell_back[0], fallbacks[-1][-3000:]
    assert "checkpoint_best.pt" in fell_back[0] or "checkpoint_1_" in fell_back[0]
    # each start removed what the kill before it left
    assert temporaries(save_dir) == []
    assert int(logged(resumed.stdout)[-1]["num_updates"]) == UPDATES
    assert_equal_states(final_state(save_dir), straight["state"])


def private_tmpfs_works(directory) -> bool:
    directory.mkdir(parents=True, exist_ok=True)
    probe = subprocess.run(["unshare", "--map-root-user", "--mount", "sh", "-c",
                            'mount -t tmpfs -o size=64k tokendrop "$0"', str(directory)], capture_output=True)
    return probe.returncode == 0


# Mount a tmpfs of SIZE bytes over the save dir, train on it, then put what the run left there
# onto the real disk under the same path (a bigger disk), so that a later start sees exactly that.
ON_A_SMALL_DISK = """
save="$1"; size="$2"; stash="$3"; shift 3
mount -t tmpfs -o size="$size" tokendrop "$save" || exit 97
"$@"; status=$?
cp -a "$save"/. "$stash"/ && umount "$save" && cp -a "$stash"/. "$save"/ || exit 98
exit $status
"""


def train_on_a_small_disk(data_bin, save_dir, size, stash):
    save_dir.mkdir(parents=True, exist_ok=True)
    stash.mkdir(parents=True)
    return subprocess.run(["unshare", "--map-root-user", "--mount", "sh", "-c", ON_A_SMALL_DISK, "sh",
                           str(save_dir), str(size), str(stash), sys.executable, "-m", "fairseq_cli.train",
                           *args(data_bin, save_dir)], cwd=REPO, capture_output=True, text=True)


def test_a_full_disk_at_the_first_and_at_a_later_save_ends_in_one_line_and_resumes(data_bin, tmp_path, straight):
    if not private_tmpfs_works(tmp_path / "probe"):
        pytest.skip("this machine gives no private tmpfs (unshare --map-root-user --mount, then mount -t tmpfs)")
    size = (straight["save_dir"] / "checkpoint_last.pt").stat().st_size  # every save writes three this size
    save_dir = tmp_path / "full"
    # half a checkpoint: the first save fails inside the write of checkpoint_1_1.pt; then room for four
    # and a half: the second save writes checkpoint_1_2.pt and fails inside its copy onto checkpoint_best.pt
    for attempt, (room, trained, failed, left) in enumerate([
            (size // 2, [1], "checkpoint_1_1.pt", []),
            (size * 9 // 2, [1, 2], "checkpoint_best.pt",
             ["checkpoint_1_1.pt", "checkpoint_1_2.pt", "checkpoint_best.pt", "checkpoint_last.pt"])]):
        proc = train_on_a_small_disk(data_bin, save_dir, room, tmp_path / f"stash{attempt}")
        assert proc.returncode == 1, (attempt, proc.returncode, proc.stderr[-3000:])
        last_line = proc.stderr.strip().splitlines()[-1]
        assert last_line.startswith(f"fairseq_tokendrop: error: cannot write {save_dir / failed}: No space left")
        assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
        assert [int(r["num_updates"]) for r in logged(proc.stdout)] == trained
        assert [p.name for p in checkpoints(save_dir)] == left and temporaries(save_dir) == []
        assert all(whole(p) for p in checkpoints(save_dir))
    run_cli("fairseq_cli.train", *args(data_bin, save_dir))  # the same command, on a disk with room
    assert_equal_states(final_state(save_dir), straight["state"])


def snapshot(save_dir):
    return {p.name: (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns) for p in save_dir.iterdir()}


def test_a_finished_run_started_again_does_nothing_and_exits_zero(data_bin, straight):
    save_dir = straight["save_dir"]
    before = snapshot(save_dir)
    again = run_cli("fairseq_cli.train", *args(data_bin, save_dir))  # exit status 0, or run_cli fails
    assert f"nothing to do: this run is finished (update {UPDATES} is --max-update {UPDATES})" in again.stdout
    assert logged(again.stdout) == [] and logged(again.stdout, "valid") == []
    assert snapshot(save_dir) == before
