"""scripts/gpu_check.sh's CPU fallback: tiny sizes, its report checked against the raw outputs it summarises."""
import json
import os
import statistics
import subprocess

import pytest
import torch
from fairseq import checkpoint_utils

from fairseq_tokendrop import get_token_importance

from conftest import REPO, logged

pytestmark = pytest.mark.slow  # starts processes: not in the fast tier (tests/run.sh --fast)


def stratified_median(times, updates, interval):
    """The benchmark's documented ScTD statistic, recomputed: ((F-1) median(drop-only) + median(full)) / F."""
    if interval == 0:
        return statistics.median(times)
    full = [t for t, u in zip(times, updates) if u % interval == 0]
    drop = [t for t, u in zip(times, updates) if u % interval != 0]
    return ((interval - 1) * statistics.median(drop) + statistics.median(full)) / interval


def test_cpu_fallback_report_matches_the_runs_it_summarises(tmp_path):
    out = tmp_path / "out"
    # no GPU visible, whichever torch build runs the suite and whatever machine it runs on
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="")
    proc = subprocess.run(["bash", "scripts/gpu_check.sh", str(out)], cwd=REPO, env=env, capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads((out / "gpu_check.json").read_text())
    assert report["cuda"] is None and report["device"] == "cpu"

    (bench,) = report["benchmarks"]
    raw = json.loads((out / "bench_bert_base_fp32.json").read_text())  # the benchmark's own per-step times
    stat = {m: stratified_median(r["step_times_s"], r["num_updates"], r["sctd_interval"])
            for m, r in raw["modes"].items()}
    assert set(bench["modes"]) == {"baseline", "importance", "sctd"}
    for mode, r in bench["modes"].items():
        assert r["ratio"] == pytest.approx(stat[mode] / stat["baseline"], rel=1e-9)
        assert r["ratio_minus_ideal"] == pytest.approx(r["ratio"] - r["ideal_ratio"], abs=1e-12)
    backends = {m: r["attention_backends"] for m, r in bench["modes"].items()}
    assert list(backends["baseline"]) == ["full"]
    assert list(backends["importance"]) == list(backends["sctd"]) == ["full", "cross", "kept"]
    assert backends["importance"]["full"] == backends["baseline"]["full"]  # same shapes, dtype and dropout
    table = (out / "gpu_check.md").read_text()
    for mode in bench["modes"]:
        assert f"| bert_base (tiny) | fp32 | {mode} | {bench['modes'][mode]['ratio']:.3f} |" in table

    train = report["fairseq_train"]
    records = logged((out / "fairseq_train" / "train.log").read_text())
    assert train["ok"] and train["updates_logged"] == len(records) == train["updates_asked"]
    assert min(float(r["kept_frac"]) for r in records) == 0.5
    last = out / "fairseq_train" / "ckpt" / "checkpoint_last.pt"
    models, _ = checkpoint_utils.load_model_ensemble([str(last)])  # the plugin's own loading path
    (saved,) = [s for s in train["saved_scores"] if s["checkpoint"] == "checkpoint_last.pt"]
    assert saved["dtype"] == "torch.float32" and saved["finite"]
    scores = get_token_importance(models[0])
    unpinned = scores[scores.abs() < 1e4]
    assert torch.isfinite(scores).all() and (unpinned != 10.0).any()  # moved from --token-importance-init
