"""Hugging Face code run the way a user without the plugin runs it: a fresh ``python -I``.

``-I`` leaves out the current directory, the script's directory and PYTHON* variables, so the
tests' own modules are out of reach; the run reports whether fairseq or the plugin was imported
(transformers must never need them). The script gets ``args`` (the payload) and fills ``out``,
which comes back through ``torch.save``/``torch.load(weights_only=True)``: tensors, lists, dicts,
strings and numbers.
"""
import os
import pickle
import subprocess
import sys

import torch

PRELUDE = """
import sys, pickle, warnings
import torch
torch.set_num_threads(1)
warnings.filterwarnings("ignore")
with open(sys.argv[1], "rb") as handle:
    args = pickle.load(handle)
out = {}
"""
EPILOGUE = """
out["imported"] = sorted({m.split(".")[0] for m in sys.modules} & {"fairseq", "fairseq_tokendrop"})
torch.save(out, sys.argv[2])
"""


def run_isolated(script: str, args: dict, work_dir) -> dict:
    """Run ``script`` in ``python -I`` with ``args``; its ``out``, after checking that it imported
    neither fairseq nor the plugin."""
    payload, result = os.path.join(work_dir, "hf_args.pkl"), os.path.join(work_dir, "hf_out.pt")
    with open(payload, "wb") as handle:
        pickle.dump(args, handle)
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_VERBOSITY="error", TOKENIZERS_PARALLELISM="false")
    proc = subprocess.run([sys.executable, "-I", "-c", PRELUDE + script + EPILOGUE, payload, result],
                          cwd=work_dir, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-4000:]
    out = torch.load(result, weights_only=True)
    assert out.pop("imported") == [], "the Hugging Face side imported fairseq or the plugin"
    return out
