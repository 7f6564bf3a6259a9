"""A tiny token-dropping pretraining run and its exports, shared by the export, HF and fine-tuning tests.

A session fixture (conftest.py shares it): raw text -> scripts/prepare_corpus.py (sentencepiece +
fairseq-preprocess) -> fairseq-train (tokendrop, 3 updates) -> scripts/export_checkpoint.py.
"""
import subprocess
import sys

import pytest

from conftest import REPO, load_script, run_cli, train_flags, write_tiny_corpus


@pytest.fixture(scope="session")
def pretrained(tmp_path_factory):
    """Paths of the run: data (data-bin with spm.model), checkpoint, and the three exports."""
    root = tmp_path_factory.mktemp("tokendrop_pretrained")
    run = {"data": root / "bin", "checkpoint": root / "ck" / "checkpoint_last.pt",
           "fairseq_export": root / "export_fairseq", "hf_export": root / "export_hf",
           "importance": root / "importance.pt"}
    write_tiny_corpus(root / "train.txt", 600, seed=1)
    write_tiny_corpus(root / "valid.txt", 60, seed=2)
    proc = subprocess.run([sys.executable, REPO / "scripts" / "prepare_corpus.py", "--train", root / "train.txt",
                           "--valid", root / "valid.txt", "--destdir", run["data"], "--vocab-size", "300",
                           "--workers", "1"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run_cli("fairseq_cli.train", *train_flags(run["data"], root / "ck", "--max-update", "3",
                                               "--token-drop", "0.5", "--disable-validation"))
    load_script("export_checkpoint").main([
        str(run["checkpoint"]), "--fairseq-out", str(run["fairseq_export"]), "--hf-out", str(run["hf_export"]),
        "--save-importance", str(run["importance"])])
    return run
