"""The plugin as a user who ran ``pip install fairseq_tokendrop`` has it: the built wheel in a fresh venv.

The fresh venv gets its dependencies (torch, fairseq, ...) from the suite's venv through a path
entry, never the checkout: its ``fairseq_tokendrop`` is the wheel's, and every command runs from a
directory outside the repository. Also: the venv scripts/setup_env.sh builds imports transformers
in a plain Python (no torchaudio built for another torch).
"""
import ast
import concurrent.futures
import os
import re
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
import torch

from conftest import REPO, write_tiny_corpus

pytestmark = pytest.mark.slow  # starts processes: not in the fast tier (tests/run.sh --fast)


def console_commands():
    """setup.py's COMMANDS: console name -> fairseq_tokendrop module (ROOM.MODULE)."""
    tree = ast.parse((REPO / "setup.py").read_text())
    node = next(n for n in tree.body if isinstance(n, ast.Assign) and n.targets[0].id == "COMMANDS")
    return {f"fairseq-tokendrop-{name}": module for name, module in ast.literal_eval(node.value).items()}


@pytest.fixture(scope="module")
def wheel_venv(tmp_path_factory):
    root = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                    "-w", root / "dist", REPO], check=True, capture_output=True)
    (wheel,) = (root / "dist").glob("fairseq_tokendrop-*.whl")
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", venv], check=True)
    site = Path(subprocess.check_output([venv / "bin" / "python", "-c", "import site; print(site.getsitepackages()[0])"],
                                        text=True).strip())
    (site / "suite_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([venv / "bin" / "pip", "install", "-q", "--no-deps", "--no-index", wheel], check=True,
                   capture_output=True)
    work = root / "work"  # outside the checkout, as a user's shell would be
    work.mkdir()
    return venv, site, work


def run(venv, work, *argv):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PATH"] = f"{venv / 'bin'}:{env['PATH']}"
    proc = subprocess.run([str(a) for a in argv], cwd=work, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, f"{argv[0]} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    return proc


def test_the_wheel_carries_the_mit_licence(wheel_venv):
    venv, site, work = wheel_venv
    (info,) = site.glob("fairseq_tokendrop-*.dist-info")
    metadata = (info / "METADATA").read_text()
    assert re.search(r"^License(-Expression)?: MIT$", metadata, re.M), metadata[:2000]
    (licence,) = info.rglob("LICENSE")
    assert licence.read_text() == (REPO / "LICENSE").read_text()


def test_every_checkout_script_is_an_installed_command_and_answers_help(wheel_venv):
    venv, site, work = wheel_venv
    commands = console_commands()
    wrappers = {p.stem for p in (REPO / "scripts").glob("*.py")}
    # python scripts/X.py from a checkout, fairseq-tokendrop-* installed
    assert {module.split(".")[-1] for module in commands.values()} == wrappers
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        helps = dict(zip(commands, pool.map(lambda c: run(venv, work, venv / "bin" / c, "--help"), commands)))
    for command, proc in helps.items():
        assert f"usage: {command} " in proc.stdout, command
    where = run(venv, work, venv / "bin" / "python", "-c", "import fairseq_tokendrop; print(fairseq_tokendrop.__file__)")
    assert where.stdout.strip().startswith(str(site))  # the wheel's copy, not the checkout's


def test_installed_commands_prepare_train_and_export(wheel_venv):
    venv, site, work = wheel_venv
    python = venv / "bin" / "python"
    write_tiny_corpus(work / "train.txt", 300, seed=1)
    write_tiny_corpus(work / "valid.txt", 40, seed=2)
    run(venv, work, venv / "bin" / "fairseq-tokendrop-prepare-corpus", "--train", "train.txt", "--valid",
        "valid.txt", "--destdir", "bin", "--vocab-size", "300", "--workers", "1")
    user_dir = site / "fairseq_tokendrop"
    run(venv, work, python, "-m", "fairseq_cli.train", "bin", "--user-dir", user_dir, "--task", "masked_lm_tokendrop",
        "--arch", "tokendrop_roberta", "--encoder-layers", "4", "--encoder-embed-dim", "32",
        "--encoder-ffn-embed-dim", "64", "--encoder-attention-heads", "2", "--tokens-per-sample", "32",
        "--max-positions", "32", "--token-drop", "0.5", "--batch-size", "8", "--optimizer", "adam", "--lr", "5e-3",
        "--max-update", "2", "--disable-validation", "--cpu", "--num-workers", "0", "--save-dir", "ckpt")
    run(venv, work, venv / "bin" / "fairseq-tokendrop-export", "ckpt/checkpoint_last.pt", "--fairseq-out", "export")
    trained = torch.load(work / "ckpt" / "checkpoint_last.pt", weights_only=False)["model"]
    exported = torch.load(work / "export" / "model.pt", weights_only=True)["model"]
    assert exported.keys() == trained.keys()
    for key, value in trained.items():
        assert torch.equal(exported[key], value), key
    assert (work / "export" / "dict.txt").read_text() == (work / "bin" / "dict.txt").read_text()


def test_setup_env_venv_imports_transformers_in_a_plain_python():
    proc = subprocess.run([sys.executable, "-I", "-c", "import transformers; from transformers import "
                           "RobertaForMaskedLM; print(RobertaForMaskedLM.__name__)"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "RobertaForMaskedLM"
