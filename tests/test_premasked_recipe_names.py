"""examples/mlperf_bert_to_target.sh finds the HDF5 producers' file names by default, not only the TF ones.

Each case lays out MLPERF_DIR with one producer's own names, training files and eval set side by side
(the eval set must not be taken for training), and runs the recipe with a ``$PYTHON`` and a
``fairseq-train`` that only record their arguments: the recipe's own choice of files is what is checked,
in milliseconds. The whole recipe runs, conversion and training included, on the TF names (part-*,
eval_10k) in test_examples.py, and each layout converts in test_premasked_layouts.py.
"""
import os
import shlex
import subprocess

import pytest

from conftest import REPO

pytestmark = pytest.mark.slow  # starts processes: not in the fast tier (tests/run.sh --fast)

# producer -> (training file names, eval set names), as each producer names them
NAMES = {
    "mlperf_tf_reference": (["part-00000-of-00500", "part-00001-of-00500"], ["eval_10k"]),
    "model_garden": (["wiki.tfrecord-00000-of-00002", "wiki.tfrecord-00001-of-00002"], ["eval_10k"]),
    "mlperf_pytorch_reference": (["part_0_of_2048.hdf5", "part_1_of_2048.hdf5"], ["part_eval_10k.hdf5"]),
    "nvidia_fixed": (["part_00000_of_04320.hdf5", "part_00001_of_04320.hdf5"], ["part_eval_10k.hdf5"]),
    "nvidia_varlength": (["part_00000_of_04320.hdf", "part_00001_of_04320.hdf"], ["part_eval_10k.hdf5"]),
    "nvidia_packed": (["part_00000", "part_00001"], ["part_eval_10k.hdf5"]),
    "deeplearningexamples": (["wikicorpus_en_training_0.hdf5", "wikicorpus_en_training_1.hdf5"],
                             ["wikicorpus_en_test_0.hdf5"]),
    "academic_budget_bert": (["train_shard_0.hdf5", "train_shard_1.hdf5"], ["test_shard_0.hdf5", "test_shard_1.hdf5"]),
}


@pytest.mark.parametrize("producer", sorted(NAMES))
def test_the_recipe_finds_each_producers_training_and_eval_files(tmp_path, producer):
    mlperf = tmp_path / "mlperf"
    mlperf.mkdir()
    train_names, eval_names = NAMES[producer]
    for name in ["vocab.txt", *train_names, *eval_names]:
        (mlperf / name).write_bytes(b"")
    calls = tmp_path / "calls"
    recorder = tmp_path / "record"
    # records each call; "python -c" (the recipe's has_split check) answers "not converted yet"
    recorder.write_text(f'#!/bin/sh\necho "$0 $*" >> {calls}\n[ "$1" != -c ]\n')
    recorder.chmod(0o755)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "fairseq-train").symlink_to(recorder)
    # from scratch: the recipe refuses to start without a checkpoint to continue, and this test has none
    env = dict(os.environ, MLPERF_DIR=str(mlperf), OUT=str(tmp_path / "out"), PYTHON=str(recorder), WORKERS="1",
               FROM_SCRATCH="1", MAX_UPDATES="10",
               PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    proc = subprocess.run(["bash", str(REPO / "examples" / "mlperf_bert_to_target.sh")], env=env,
                          capture_output=True, text=True)
    assert proc.returncode == 1 and "training ended without reaching" in proc.stderr, proc.stderr[-3000:]
    converted = {}
    for line in calls.read_text().splitlines():
        args = shlex.split(line)
        if args[1].endswith("convert_premasked.py"):
            split = args[args.index("--split") + 1]
            converted[split] = args[args.index("--workers") + 2:]
    assert converted == {"train": [str(mlperf / name) for name in train_names], "valid": [str(mlperf / name) for name in eval_names]}
