"""The prepared device check: token dropping's speed where users run it, in one command.

    bash scripts/gpu_check.sh [OUT_DIR]          # picks a Python with torch and fairseq, then runs this
    python -m fairseq_tokendrop.research.gpu_check --out OUT_DIR [--tiny]

Writes ``OUT_DIR/gpu_check.json`` and ``OUT_DIR/gpu_check.md`` (a markdown table), and each part's own
output beside them. Parts, each a fresh process with its own time limit inside one overall budget:

1. the interleaved benchmark (``research/benchmark.py``) at BERT-base size, T 512, keep 256, in fp16 and in
   bf16 (importance and ScTD F=10 against stock RoBERTa), and at roberta_large, T 512, keep 256, in fp16:
   ratio against the MAC ideal, tokens/s, peak memory, and the SDPA backend each kind of layer ran;
2. ScTD's F=10 cost against "token dropping plus one full step every F" (from the BERT-base runs);
3. 200 updates of ``fairseq-train --fp16`` on a small model and a generated corpus, ScTD every 10:
   every logged loss and importance summary finite, ``kept_frac`` the value set, the saved scores
   float32 and finite.

Without CUDA, or with ``--tiny``, every part runs at tiny sizes (fp32 in place of fp16, which needs
CUDA, and no ``--fp16`` for fairseq-train): the CPU fallback the test suite runs.
"""
import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

from fairseq_tokendrop.atomic_file import atomic_path
from fairseq_tokendrop.research.structured_corpus import write_structured_corpus

USER_DIR = str(Path(__file__).resolve().parents[1])
BUDGET_S = 450  # the bound is 8 minutes on one H100/H200; set-up and imports take the rest
TRAIN_DROP = 0.5
TRAIN_UPDATES = {True: 200, False: 20}  # cuda, tiny

GPU_BENCH_COMMON = ["--seq-len", "512", "--token-drop", "0.5", "--sctd-interval", "10", "--warmup", "5"]
TINY_BENCH_COMMON = ["--layers", "4", "--dim", "32", "--ffn", "64", "--heads", "2", "--vocab", "200",
                     "--seq-len", "32", "--token-drop", "0.5", "--sctd-interval", "2", "--batch-size", "2",
                     "--warmup", "1", "--steps", "4", "--threads", "1"]
GPU_TRAIN_MODEL = ["--encoder-layers", "6", "--encoder-embed-dim", "256", "--encoder-ffn-embed-dim", "1024",
                   "--encoder-attention-heads", "4", "--tokens-per-sample", "128", "--max-positions", "128",
                   "--batch-size", "32"]
TINY_TRAIN_MODEL = ["--encoder-layers", "4", "--encoder-embed-dim", "32", "--encoder-ffn-embed-dim", "64",
                    "--encoder-attention-heads", "2", "--tokens-per-sample", "32", "--max-positions", "32",
                    "--batch-size", "8"]


def benchmarks(cuda: bool):
    """(name, precision, benchmark flags, time limit s) of each benchmark part."""
    if not cuda:
        return [("bert_base (tiny)", "fp32", TINY_BENCH_COMMON + ["--modes", "importance,sctd"], 120)]
    base = ["--arch", "base", "--batch-size", "32", "--modes", "importance,sctd", "--steps", "60"]
    large = ["--arch", "large", "--batch-size", "16", "--modes", "importance", "--steps", "30"]
    return [("bert_base", p, base + GPU_BENCH_COMMON + ["--precision", p], 110) for p in ("fp16", "bf16")] + [
        ("roberta_large", "fp16", large + GPU_BENCH_COMMON + ["--precision", "fp16"], 120)]


class Budget:
    def __init__(self, seconds):
        self.end = time.monotonic() + seconds

    def limit(self, wanted):
        return max(1.0, min(wanted, self.end - time.monotonic()))


def run_part(label, cmd, log_path, timeout):
    """Run one part, its output to ``log_path``; (exit status or 'timed out', seconds)."""
    print(f"[gpu_check] {label}: running (limit {timeout:.0f} s) ...", flush=True)
    start = time.monotonic()
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    with open(log_path, "w") as log:
        try:
            status = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, timeout=timeout).returncode
        except subprocess.TimeoutExpired:
            status = "timed out"
    seconds = time.monotonic() - start
    print(f"[gpu_check] {label}: {'ok' if status == 0 else status} in {seconds:.0f} s (log {log_path})", flush=True)
    return status, seconds


def benchmark_part(out, name, precision, flags, limit, budget):
    stem = f"bench_{name.split()[0]}_{precision}"
    json_path = out / f"{stem}.json"
    cmd = [sys.executable, "-m", "fairseq_tokendrop.research.benchmark", *flags, "--json", str(json_path)]
    status, seconds = run_part(f"benchmark {name} {precision}", cmd, out / f"{stem}.log", budget.limit(limit))
    part = {"name": name, "precision": precision, "command": cmd[1:], "status": status, "seconds": seconds}
    if status != 0 or not json_path.exists():
        return part
    result = json.loads(json_path.read_text())
    part["config"] = {k: result["config"][k] for k in ("layers", "dim", "ffn", "heads", "seq_len", "kept",
                                                      "batch_size", "vocab", "sctd_interval")}
    part["device"] = result["device"]
    part["modes"] = {
        mode: {"ratio": r["ratio"], "ideal_ratio": r["ideal_ratio"], "ratio_minus_ideal": r["ratio"] - r["ideal_ratio"],
               "tokens_per_s": r["tokens_per_s"], "peak_mem_bytes": r["peak_mem_bytes"],
               "step_mem_bytes": r["step_mem_bytes"], "attention_backends": r["attention_backends"]}
        for mode, r in result["modes"].items()}
    part["sctd_check"] = result["sctd_check"]
    return part


def find_scores(obj, path=""):
    """The importance-score tensor inside a loaded checkpoint, wherever it rides (a key or metadata
    entry naming ``token_importance``); None if absent."""
    items = obj.items() if isinstance(obj, dict) else ()
    for key, value in items:
        where = f"{path}.{key}" if path else str(key)
        if "token_importance" in where and torch.is_tensor(value):
            return where, value
        found = find_scores(value, where)
        if found:
            return found
    metadata = getattr(obj, "_metadata", None)
    return find_scores(metadata, path + "._metadata") if isinstance(metadata, dict) else None


def train_part(out, cuda, budget):
    """200 updates of fairseq-train on a generated corpus, and the checks on its log and checkpoint."""
    work = out / "fairseq_train"
    work.mkdir(exist_ok=True)
    updates = TRAIN_UPDATES[cuda]
    write_structured_corpus(work / "train.txt", 20000 if cuda else 400, seed=1)
    write_structured_corpus(work / "valid.txt", 100, seed=2)
    prep = [sys.executable, "-m", "fairseq_cli.preprocess", "--only-source", "--trainpref", str(work / "train.txt"),
            "--validpref", str(work / "valid.txt"), "--destdir", str(work / "bin"), "--workers", "1"]
    status, _ = run_part("fairseq-preprocess", prep, work / "preprocess.log", budget.limit(60))
    part = {"status": status, "updates_asked": updates, "precision": "--fp16" if cuda else "fp32 (cpu fallback)"}
    if status != 0:
        return part
    cmd = [sys.executable, "-m", "fairseq_cli.train", str(work / "bin"), "--user-dir", USER_DIR,
           "--task", "masked_lm_tokendrop", "--arch", "tokendrop_roberta_base",
           *(GPU_TRAIN_MODEL if cuda else TINY_TRAIN_MODEL), "--sample-break-mode", "none",
           "--token-drop", str(TRAIN_DROP), "--sctd-interval", "10", "--optimizer", "adam", "--lr", "5e-4",
           "--max-update", str(updates), "--save-interval-updates", str(updates // 2), "--no-epoch-checkpoints",
           "--disable-validation", "--save-dir", str(work / "ckpt"), "--log-format", "json", "--log-interval", "1",
           "--no-progress-bar", "--num-workers", "0", "--seed", "1", *(["--fp16"] if cuda else ["--cpu"])]
    status, seconds = run_part("fairseq-train", cmd, work / "train.log", budget.limit(150))
    part.update(command=cmd[1:], status=status, seconds=seconds)
    records = [json.loads(line.split("| train_inner | ", 1)[1])
               for line in (work / "train.log").read_text().splitlines() if "| train_inner | " in line]
    keys = ("loss", "imp_mean", "imp_std")
    part["updates_logged"] = len(records)
    part["all_finite"] = bool(records) and all(math.isfinite(float(r[k])) for r in records for k in keys)
    # without padding the middle layers see 1 - P of the tokens; padding is dropped first, so a batch
    # with padding (an epoch's last block) keeps a larger share of its real tokens, never a smaller one
    part["kept_frac_set"] = keep = 1 - TRAIN_DROP
    part["kept_frac_logged"] = sorted({float(r["kept_frac"]) for r in records})
    part["kept_frac_as_set"] = bool(records) and min(part["kept_frac_logged"]) == keep
    part["loss_scale_logged"] = any("loss_scale" in r for r in records)
    part["first_last_loss"] = [float(records[0]["loss"]), float(records[-1]["loss"])] if records else None
    scores = []
    for path in sorted((work / "ckpt").glob("checkpoint*.pt")):  # the mid-run save and the last
        found = find_scores(torch.load(path, map_location="cpu"))  # torch's safe loader; the plugin allowlists
        scores.append({"checkpoint": path.name, "where": found and found[0],
                       "dtype": found and str(found[1].dtype),
                       "finite": bool(found and torch.isfinite(found[1]).all())})
    part["saved_scores"] = scores
    part["scores_float32_and_finite"] = bool(scores) and all(s["dtype"] == "torch.float32" and s["finite"]
                                                               for s in scores)
    part["ok"] = (status == 0 and len(records) == updates and part["all_finite"]
                  and part["kept_frac_as_set"] and part["scores_float32_and_finite"])
    return part


def mib(value):
    return "n/a" if value is None else f"{value / 2**20:.0f}"


def markdown(report):
    lines = [f"Device: {report['device']}; torch {report['torch']}" + (f", CUDA {report['cuda']}" if report["cuda"]
                                                                       else " (no CUDA: tiny CPU fallback)"), "",
             "| config | precision | mode | ratio | ideal | ratio - ideal | tokens/s | step peak MiB | peak MiB "
             "| SDPA backend (full / cross / kept) |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for part in report["benchmarks"]:
        if "modes" not in part:
            lines.append(f"| {part['name']} | {part['precision']} | {part['status']} | | | | | | | |")
            continue
        for mode, r in part["modes"].items():
            backends = " / ".join("+".join(r["attention_backends"].get(k, ["-"])) for k in ("full", "cross", "kept"))
            lines.append(f"| {part['name']} | {part['precision']} | {mode} | {r['ratio']:.3f} | {r['ideal_ratio']:.3f} "
                         f"| {r['ratio_minus_ideal']:+.3f} | {r['tokens_per_s']:.0f} | {mib(r['step_mem_bytes'])} "
                         f"| {mib(r['peak_mem_bytes'])} | {backends} |")
    lines.append("")
    for part in report["benchmarks"]:
        check = part.get("sctd_check")
        if check:
            lines.append(f"- ScTD F={part['config']['sctd_interval']} ({part['name']}, {part['precision']}): measured "
                         f"{check['measured_ratio']:.3f} of a baseline step, expected {check['expected_ratio']:.3f}, "
                         f"difference {check['difference']:+.3f} (target within {check['target']})")
    t = report["fairseq_train"]
    lines.append(f"- fairseq-train {t['precision']}: {t.get('updates_logged', 0)} of {t['updates_asked']} updates "
                 f"logged, losses and importance summaries finite: {t.get('all_finite')}, kept_frac "
                 f"{t.get('kept_frac_logged')} (set {t.get('kept_frac_set')}), saved scores float32 and finite: "
                 f"{t.get('scores_float32_and_finite')}, loss {t.get('first_last_loss')} (first, last); "
                 f"{'ok' if t.get('ok') else 'FAILED'}")
    lines.append(f"- wall time {report['wall_s']:.0f} s")
    return "\n".join(lines) + "\n"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", required=True, help="directory for gpu_check.json, gpu_check.md and each part's log")
    p.add_argument("--tiny", action="store_true", help="tiny sizes even on a GPU (the CPU fallback's sizes)")
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cuda = torch.cuda.is_available() and not args.tiny
    start = time.monotonic()
    budget = Budget(BUDGET_S)
    report = {"device": torch.cuda.get_device_name() if cuda else "cpu", "torch": torch.__version__,
              "cuda": torch.version.cuda if cuda else None, "benchmarks": []}
    for name, precision, flags, limit in benchmarks(cuda):
        report["benchmarks"].append(benchmark_part(out, name, precision, flags, limit, budget))
    report["fairseq_train"] = train_part(out, cuda, budget)
    report["wall_s"] = time.monotonic() - start
    for name, text in (("gpu_check.json", json.dumps(report, indent=1)), ("gpu_check.md", markdown(report))):
        with atomic_path(out / name) as tmp, open(tmp, "w") as f:
            f.write(text)
    print(markdown(report), flush=True)
    ok = report["fairseq_train"].get("ok") and all(part["status"] == 0 for part in report["benchmarks"])
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
