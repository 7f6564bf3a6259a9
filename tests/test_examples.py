"""The recipes in examples/ run as written (shrunk by their EXTRA_ARGS hook, on CPU)."""
import json
import os
import subprocess
import sys

import pytest

from conftest import REPO, TINY_MODEL_FLAGS

SHRINK = TINY_MODEL_FLAGS + ["--max-update", "2", "--batch-size", "4", "--num-workers", "0",
                             "--log-interval", "1", "--disable-validation"]


@pytest.mark.parametrize("script,extra_env", [
    ("sctd_roberta_large.sh", {}),
    ("tokendrop_bert_base_tf.sh", {"PER_GPU": "4", "NGPU": "1",
                                   "EXTRA_ARGS_PREFIX": "--token-keep-k 16 --update-freq 1"}),
])
def test_recipe_runs(data_bin, tmp_path, script, extra_env):
    prefix = extra_env.pop("EXTRA_ARGS_PREFIX", "")
    env = dict(os.environ, DATA_DIR=str(data_bin), SAVE_DIR=str(tmp_path), FP16="",
               EXTRA_ARGS=f"{prefix} {' '.join(SHRINK)}",
               PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"], **extra_env)
    proc = subprocess.run(["bash", str(REPO / "examples" / script)], env=env, capture_output=True, text=True)
    log = (tmp_path / "train.log").read_text()
    assert proc.returncode == 0, log[-3000:]
    records = [json.loads(line.split("| train_inner | ", 1)[1]) for line in log.splitlines()
               if "| train_inner | " in line]
    assert [r["num_updates"] for r in records] == ["1", "2"], log[-3000:]
    # padding is dropped first, so slightly more than half of the real tokens stay
    assert all(0.5 <= float(r["kept_frac"]) < 0.7 for r in records)
    assert (tmp_path / "checkpoint_last.pt").exists()
