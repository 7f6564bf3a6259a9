"""scripts/gpu_check.sh's CPU fallback: tiny sizes, its report checked against a hand count and the outputs it
summarises."""
import json
import os
import subprocess

import pytest
import torch
from fairseq import checkpoint_utils

from fairseq_tokendrop import get_token_importance

from conftest import REPO, logged
from hand_macs import layer_by_hand, mlm_head_by_hand

pytestmark = pytest.mark.slow  # starts processes: not in the fast tier (tests/run.sh --fast)

# the CPU fallback's benchmark as gpu_check.py documents it: 4 layers, d 32, FFN 64, 2 heads, T 32, a
# vocabulary of 200, --token-drop 0.5 (K 16), ScTD every 2 updates, 2 rows; 15% of T masked, rounded
TINY = dict(layers=4, dim=32, ffn=64, heads=2, seq_len=32, kept=16, batch_size=2, vocab=200, sctd_interval=2)
MASKED_PER_ROW = 5


def ideal_ratios_by_hand():
    """Each mode's MACs per forward over the baseline's: layers 0 and 3 full, layer 1 the cross layer (16
    queries over 32 keys), layer 2 on the 16 kept tokens, the head on the masked tokens; ScTD adds a full
    forward every second update."""
    d, f, h = TINY["dim"], TINY["ffn"], TINY["heads"]
    full, cross, kept = layer_by_hand(32, 32, d, f, h), layer_by_hand(16, 32, d, f, h), layer_by_hand(16, 16, d, f, h)
    head = mlm_head_by_hand(MASKED_PER_ROW, d, TINY["vocab"])
    baseline, dropping = 4 * full + head, 2 * full + cross + kept + head
    return {"baseline": 1.0, "importance": dropping / baseline, "sctd": (dropping + baseline / 2) / baseline}


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
    raw = json.loads((out / "bench_bert_base_fp32.json").read_text())  # what the benchmark itself wrote
    assert bench["config"] == TINY and raw["config"]["masked_per_row"] == MASKED_PER_ROW
    assert set(bench["modes"]) == {"baseline", "importance", "sctd"}
    ideal = ideal_ratios_by_hand()
    for mode, r in bench["modes"].items():
        measured = raw["modes"][mode]
        assert (r["ratio"], r["tokens_per_s"], r["peak_mem_bytes"]) == (
            measured["ratio"], measured["tokens_per_s"], measured["peak_mem_bytes"])
        assert r["ideal_ratio"] == pytest.approx(ideal[mode], rel=1e-12)
        assert r["ratio_minus_ideal"] == pytest.approx(measured["ratio"] - ideal[mode], rel=1e-12)
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
