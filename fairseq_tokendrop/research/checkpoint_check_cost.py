"""What writing and checking a checkpoint whole costs, per save and per load, at a chosen model size.

The state is what fairseq-train saves: a ``tokendrop_roberta`` model's state dict (its importance
scores in the metadata) and Adam's two moments per parameter, float32. Timed, each the median of
``--repeats`` runs, as wall and as process CPU time:

- ``save_crc_off``: ``torch.save`` without CRC-32s (``torch.serialization.set_crc32_options(False)``,
  torch >= 2.6; on older torch this is the same save as the next);
- ``save_crc_on``: ``torch.save`` as torch does by default, computing the CRC-32 of every record:
  the digest's cost per save is the difference;
- ``save_atomic``: the plugin's writer (``atomic_torch_save``: CRC-32s, a temporary name, fsync,
  rename, fsync of the directory), what fairseq-train's saves go through under the plugin;
- ``load``: ``torch.load`` of the file, as fairseq's loader reads it (weights_only);
- ``check``: ``verification.damage``, the CRC-32 of every record of the file, which every load
  by the plugin (resume, eval, export, import) does first; ``scores``: the finite-scores check.

The file is read once before the timed loads, so they read from the page cache, as a resume
right after the verification does.

    python -m fairseq_tokendrop.research.checkpoint_check_cost --size base --dir /tmp/cost --json out.json
"""
import argparse
import json
import os
import statistics
import time

import torch

from ..checkpoints.checkpoint_io import atomic_torch_save
from ..checkpoints.verification import damage, non_finite_scores
from ..standalone import build_model, made_up_dictionary

SIZES = {  # RoBERTa-base (~125M parameters with its 50265-entry vocabulary); a tiny one for tests
    "base": dict(vocab=50265, encoder_layers=12, encoder_embed_dim=768, encoder_ffn_embed_dim=3072,
                 encoder_attention_heads=12, max_positions=512),
    "tiny": dict(vocab=100, encoder_layers=4, encoder_embed_dim=32, encoder_ffn_embed_dim=64,
                 encoder_attention_heads=2, max_positions=32),
}


def training_state(size: str) -> dict:
    """A fairseq-train-like checkpoint: model state dict with scores, and Adam's state after one step."""
    dims = dict(SIZES[size])
    torch.manual_seed(0)
    model = build_model("tokendrop_roberta_base", made_up_dictionary(dims.pop("vocab")), token_drop=0.5, **dims)
    optimizer = torch.optim.Adam(model.parameters())
    for p in model.parameters():
        p.grad = torch.randn_like(p)
    optimizer.step()
    return {"model": model.state_dict(), "last_optimizer_state": optimizer.state_dict(),
            "optimizer_history": [{"num_updates": 1}]}


def timed(run, repeats: int) -> dict:
    """Median wall and process CPU seconds of ``run()`` (CPU time leaves out time the process waited:
    for the disk, or for a core other load held)."""
    wall, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        run()
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return {"wall_s": statistics.median(wall), "cpu_s": statistics.median(cpu)}


def save_with_crc(state, path: str, crc: bool) -> None:
    # the switch came with torch 2.6 (pytorch PR 137735); before it, torch always computes the CRC-32s
    switch = getattr(torch.serialization, "set_crc32_options", None)
    if switch is None:
        return torch.save(state, path)
    before = torch.serialization.get_crc32_options()
    switch(crc)
    try:
        torch.save(state, path)
    finally:
        switch(before)


def measure(state: dict, directory: str, repeats: int) -> dict:
    """Seconds per operation (see the module doc) and the file's size, for ``state`` written in ``directory``."""
    os.makedirs(directory, exist_ok=True)
    plain, checked = os.path.join(directory, "crc_off.pt"), os.path.join(directory, "checkpoint.pt")
    result = {
        "save_crc_off": timed(lambda: save_with_crc(state, plain, False), repeats),
        "save_crc_on": timed(lambda: save_with_crc(state, checked, True), repeats),
        "save_atomic": timed(lambda: atomic_torch_save(state, checked), repeats),
    }
    damage(checked)  # into the page cache
    result["load"] = timed(lambda: torch.load(checked, map_location="cpu", weights_only=True), repeats)
    result["check"] = timed(lambda: damage(checked), repeats)
    result["scores"] = timed(lambda: non_finite_scores(checked), repeats)
    result["file_bytes"] = os.path.getsize(checked)
    # distinct storages: the LM head's weight is the embedding's (tied), in the state dict twice
    result["parameters"] = sum({t.untyped_storage().data_ptr(): t.numel() for t in state["model"].values()}.values())
    return result


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--size", choices=sorted(SIZES), default="base")
    p.add_argument("--dir", required=True, help="where to write the checkpoints (two files of the size measured)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--json", metavar="OUT", help="write the results here as JSON")
    args = p.parse_args(argv)
    result = measure(training_state(args.size), args.dir, args.repeats)
    gb = result["file_bytes"] / 1e9
    print(f"{result['parameters'] / 1e6:.1f}M parameters, checkpoint {gb:.2f} GB, median of {args.repeats}:")
    for key in ("save_crc_off", "save_crc_on", "save_atomic", "load", "check", "scores"):
        wall, cpu = result[key]["wall_s"], result[key]["cpu_s"]
        print(f"  {key:13s} {wall:7.2f} s wall ({gb / max(wall, 1e-9):5.2f} GB/s), {cpu:7.2f} s CPU")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
