"""A tiny token-dropping pretraining run and its exports, shared by the export, HF and fine-tuning tests.

Made once per pytest session (cached under the session's base temp dir, whichever
test module asks first): raw text -> scripts/prepare_corpus.py (sentencepiece +
fairseq-preprocess) -> fairseq-train (tokendrop, 3 updates) -> scripts/export_checkpoint.py.
"""
import importlib.util
import subprocess
import sys

from conftest import REPO, run_cli, train_flags, write_structured_corpus


def load_script(name):
    """A script of scripts/ as a module, to call its main(argv) in-process (as fast as a test needs)."""
    spec = importlib.util.spec_from_file_location(f"script_{name}", REPO / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def pretrained(tmp_path_factory):
    """Paths of the run: data (data-bin with spm.model), checkpoint, and the three exports."""
    root = tmp_path_factory.getbasetemp() / "tokendrop_pretrained"
    run = {"data": root / "bin", "checkpoint": root / "ck" / "checkpoint_last.pt",
           "fairseq_export": root / "export_fairseq", "hf_export": root / "export_hf",
           "importance": root / "importance.pt"}
    if (root / "done").exists():
        return run
    root.mkdir(exist_ok=True)
    write_structured_corpus(root / "train.txt", 600, seed=1)
    write_structured_corpus(root / "valid.txt", 60, seed=2)
    proc = subprocess.run([sys.executable, REPO / "scripts" / "prepare_corpus.py", "--train", root / "train.txt",
                           "--valid", root / "valid.txt", "--destdir", run["data"], "--vocab-size", "300",
                           "--workers", "1"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run_cli("fairseq_cli.train", *train_flags(run["data"], root / "ck", "--max-update", "3",
                                               "--token-drop", "0.5", "--disable-validation"))
    load_script("export_checkpoint").main([
        str(run["checkpoint"]), "--fairseq-out", str(run["fairseq_export"]), "--hf-out", str(run["hf_export"]),
        "--save-importance", str(run["importance"])])
    (root / "done").touch()
    return run
