"""The FLOP counter against hand counts, matmul by matmul; the benchmark end to end."""
import json
import subprocess
import sys

import numpy as np
import pytest

from fairseq_tokendrop.method import flops

from conftest import REPO
from hand_macs import layer_by_hand, mlm_head_by_hand


def test_small_configuration_matches_a_hand_count():
    # N=4: layer 0 full, layer 1 cross (N//2-1), layer 2 kept, layer 3 full.
    d, f, T, K, M, V = 8, 16, 10, 4, 2, 20
    full_layer = T * d * d * 4 + T * 2 * d * f + T * 2 * T * d  # QKVO, FFN, attention
    cross_layer = (K * d * d          # Q projection, kept tokens
                   + 2 * T * d * d    # K and V projections, all tokens
                   + K * d * d        # output projection
                   + K * 2 * d * f    # FFN
                   + K * 2 * T * d)   # K queries over T keys
    kept_layer = K * d * d * 4 + K * 2 * d * f + K * 2 * K * d
    head = M * (d * d + d * V)
    assert (full_layer, cross_layer, kept_layer, head) == (6720, 3456, 2304, 448)

    full = 4 * full_layer + head
    drop = full_layer + cross_layer + kept_layer + full_layer + head
    assert flops.encoder_macs(4, d, f, T) == 4 * full_layer
    assert flops.encoder_macs(4, d, f, T, K) == 2 * full_layer + cross_layer + kept_layer
    assert flops.mlm_head_macs(M, d, V) == head
    assert flops.forward_macs(4, d, f, T, None, M, V) == full
    assert flops.forward_macs(4, d, f, T, K, M, V) == drop
    assert flops.ideal_ratio(4, d, f, T, K, M, V) == pytest.approx(drop / full)


def test_keeping_every_token_is_the_full_model():
    assert flops.encoder_macs(6, 8, 16, 10, kept=10) == flops.encoder_macs(6, 8, 16, 10)
    assert flops.ideal_ratio(6, 8, 16, 10, 10, 2, 20) == 1.0


def test_sctd_average_adds_one_full_pass_every_f_updates():
    drop = 0.76
    per_update = ((10 - 1) / 10) * drop + (1 / 10) * (drop + 1.0)
    assert flops.sctd_ideal_ratio(drop, 10) == pytest.approx(per_update)
    assert flops.sctd_ideal_ratio(drop, 0) == drop


def hand_layer(q, s, d, f):
    """One layer, q queries over s keys and values, by hand (the number of heads does not change it)."""
    return layer_by_hand(q, s, d, f, heads=1)


def test_random_ltd_layout_matches_a_hand_count():
    # N=6, layers 1-4 wrapped: layers 0 and 5 full, four layers of K queries over the same K tokens
    d, f, T, K = 8, 16, 10, 4
    assert (hand_layer(T, T, d, f), hand_layer(K, K, d, f)) == (6720, 2304)
    assert flops.encoder_macs(6, d, f, T, K, layerwise=4) == 2 * 6720 + 4 * 2304
    assert flops.encoder_macs(6, d, f, T, K, layerwise=2) == 4 * 6720 + 2 * 2304  # --random-ltd-layers 2,3
    assert flops.encoder_macs(6, d, f, T, T, layerwise=4) == 6 * 6720  # a kept length of T drops nothing
    head = 2 * (d * d + d * 20)
    assert flops.ideal_ratio(6, d, f, T, K, 2, 20, layerwise=4) == pytest.approx(
        (2 * 6720 + 4 * 2304 + head) / (6 * 6720 + head))
    assert flops.training_update_macs(6, d, f, 20, 3, T, K, 5, layerwise=4) == 3 * (
        3 * (2 * 6720 + 4 * 2304) + 5 * (d * d + d * 20))


# BERT-base (d 768, FFN 3072, 12 heads, 12 layers), T 512, K 256, the head on 77 masked tokens of a
# 50,000-word vocabulary
BERT_BASE = dict(d=768, f=3072, heads=12)


def test_bert_base_macs_equal_a_hand_count_per_layer():
    full = layer_by_hand(512, 512, **BERT_BASE)
    cross = layer_by_hand(256, 512, **BERT_BASE)  # the 256 kept queries over all 512 keys and values
    kept = layer_by_hand(256, 256, **BERT_BASE)
    head = mlm_head_by_hand(77, 768, 50_000)
    assert (full, cross, kept, head) == (4_026_531_840, 2_315_255_808, 1_912_602_624, 3_002_216_448)
    # token dropping: layers 0-4 full, 5 cross, 6-10 kept, 11 full; random-LTD: layers 1-10 wrapped
    baseline, dropping, layerwise = 12 * full, 6 * full + cross + 5 * kept, 2 * full + 10 * kept
    assert flops.encoder_macs(12, 768, 3072, 512) == baseline
    assert flops.encoder_macs(12, 768, 3072, 512, 256) == dropping
    assert flops.encoder_macs(12, 768, 3072, 512, 256, layerwise=10) == layerwise
    assert flops.mlm_head_macs(77, 768, 50_000) == head
    assert flops.forward_macs(12, 768, 3072, 512, None, 77, 50_000) == baseline + head
    assert flops.forward_macs(12, 768, 3072, 512, 256, 77, 50_000) == dropping + head
    assert flops.forward_macs(12, 768, 3072, 512, 256, 77, 50_000, layerwise=10) == layerwise + head
    # the ratios flops.py and the docs quote, from the same integers
    ratios = (flops.ideal_ratio(12, 768, 3072, 512, 256), flops.ideal_ratio(12, 768, 3072, 512, 256, 77, 50_000),
              flops.ideal_ratio(12, 768, 3072, 512, 256, layerwise=10))
    assert ratios == (dropping / baseline, (dropping + head) / (baseline + head), layerwise / baseline)
    assert [f"{r:.4f}" for r in ratios] == ["0.7458", "0.7607", "0.5625"]


def test_a_cross_layer_projecting_k_and_v_on_the_kept_tokens_only_is_caught():
    """The miscount an anchor of 0.746 +- 0.01 let through: K and V projected on the 256 kept tokens instead
    of all 512 take 2 * 256 * 768^2 MACs off the cross layer, 0.00625 off the ratio."""
    full, kept = layer_by_hand(512, 512, **BERT_BASE), layer_by_hand(256, 256, **BERT_BASE)
    right = 6 * full + layer_by_hand(256, 512, **BERT_BASE) + 5 * kept
    wrong = 6 * full + layer_by_hand(256, 512, **BERT_BASE, kv_tokens=256) + 5 * kept
    assert right - wrong == 2 * 256 * 768 * 768
    assert wrong / (12 * full) == pytest.approx(0.746, abs=0.01)  # what the anchor accepted
    assert flops.encoder_macs(12, 768, 3072, 512, 256) == right != wrong


def test_equal_compute_updates_under_a_schedule_sums_the_updates_costs():
    # a constant ratio: 100 / 0.3 = 333.3 -> 333
    assert flops.equal_compute_updates(100, 0.3) == 333 == flops.equal_compute_updates(100, lambda u: 0.3)
    # updates cost 0.5 for u < 4, then 1.0: 4 * 0.5 = 2, then 8 more updates reach 10
    assert flops.equal_compute_updates(10, lambda u: 0.5 if u < 4 else 1.0) == 12
    # 6 updates of 0.5 leave 0.4 of a budget of 3.4: an update of 1.0 would overshoot by 0.6, so stop at 6
    assert flops.equal_compute_updates(3.4, lambda u: 0.5 if u < 6 else 1.0) == 6
    assert flops.equal_compute_updates(3.6, lambda u: 0.5 if u < 6 else 1.0) == 7


def numpy_quartiles(times, updates, interval):
    """(q1, median, q3) by the benchmark's documented rule, from NumPy's percentiles (linear interpolation):
    plain, or ((F-1) * drop-only + full-pass) / F per quartile for ScTD's interval F."""
    times, updates = np.asarray(times), np.asarray(updates)
    if interval == 0:
        return np.percentile(times, [25, 50, 75])
    full = np.percentile(times[updates % interval == 0], [25, 50, 75])
    drop = np.percentile(times[updates % interval != 0], [25, 50, 75])
    return ((interval - 1) * drop + full) / interval


@pytest.mark.slow
def test_benchmark_runs_end_to_end_on_cpu(tmp_path):
    out = tmp_path / "bench.json"
    flags = ["--layers", "4", "--dim", "16", "--ffn", "32", "--heads", "2", "--vocab", "60",
             "--seq-len", "20", "--batch-size", "2", "--device", "cpu", "--token-drop", "0.5",
             "--sctd-interval", "2", "--random-ltd-kept", "5,15", "--warmup", "1", "--steps", "4",
             "--threads", "1", "--json", str(out)]
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "benchmark.py"), *flags],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.splitlines()[0].endswith(" ".join(flags))
    result = json.loads(out.read_text())

    assert result["torch"] and result["device"] and result["command"].endswith(" ".join(flags))
    config = result["config"]
    # K = 20 * (1 - 0.5), M = round(15% of 20)
    assert (config["kept"], config["masked_per_row"], config["steps"]) == (10, 3, 4)

    # the MACs of one sequence counted by hand (N=4: layer 0 full, layer 1 cross, layer 2 kept, layer 3 full)
    d, f, T, K, M, V = 16, 32, 20, 10, 3, 60
    full_layer, kept_layer = hand_layer(T, T, d, f), hand_layer(K, K, d, f)
    cross_layer = K * d * d + 2 * T * d * d + K * d * d + 2 * K * d * f + 2 * K * T * d  # Q, K/V on all, O, FFN, QK/AV
    head = M * (d * d + d * V)
    full, drop = 4 * full_layer + head, 2 * full_layer + cross_layer + kept_layer + head
    ideal = result["ideal"]
    assert (ideal["full_macs_per_sequence"], ideal["drop_macs_per_sequence"]) == (full, drop)
    assert ideal["encoder_ratio"] == pytest.approx((drop - head) / (full - head), rel=1e-12)
    assert ideal["with_head_ratio"] == pytest.approx(drop / full, rel=1e-12)
    # ScTD F=2: every other update adds one full forward
    expected_ideal = {"baseline": 1.0, "importance": drop / full, "random": drop / full, "sctd": drop / full + 0.5}
    # random-LTD on layers 1-2 of 4: K of the 20 tokens there
    for k in (5, 15):
        expected_ideal[f"random-ltd-{k}"] = (2 * full_layer + 2 * hand_layer(k, k, d, f) + head) / full

    modes = result["modes"]
    assert set(modes) == set(expected_ideal)
    base = numpy_quartiles(modes["baseline"]["step_times_s"], modes["baseline"]["num_updates"], 0)[1]
    base_cpu = numpy_quartiles(modes["baseline"]["cpu_times_s"], modes["baseline"]["num_updates"], 0)[1]
    lines = proc.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("mode "))
    table = {line.split()[0]: line.split() for line in lines[header + 1:header + 1 + len(modes)]}
    for name, r in modes.items():
        times, updates = r["step_times_s"], r["num_updates"]
        assert len(times) == len(updates) == 4 and all(t > 0 for t in times)
        q1, median, q3 = numpy_quartiles(times, updates, r["sctd_interval"])
        assert (r["q1_s"], r["median_s"], r["q3_s"]) == pytest.approx((q1, median, q3), rel=1e-12)
        assert (r["min_s"], r["max_s"], r["mean_s"]) == pytest.approx(
            (np.min(times), np.max(times), np.mean(times)), rel=1e-12)
        assert r["tokens_per_s"] == pytest.approx(2 * 20 / median, rel=1e-12)
        assert r["ratio"] == pytest.approx(median / base, rel=1e-12)
        cpu_median = numpy_quartiles(r["cpu_times_s"], updates, r["sctd_interval"])[1]
        assert len(r["cpu_times_s"]) == 4 and r["cpu_ratio"] == pytest.approx(cpu_median / base_cpu, rel=1e-12)
        assert r["peak_mem_bytes"] is None  # not measurable per mode on cpu
        assert r["ideal_ratio"] == pytest.approx(expected_ideal[name], rel=1e-12)
        # the printed row: median, IQR, min-max, tokens/s, memory, ratio, ideal, cpu-time ratio
        row = table[name]
        assert row[1:5] == [f"{median:.4f}", f"{q1:.4f}-{q3:.4f}", f"{np.min(times):.4f}-{np.max(times):.4f}",
                            f"{2 * 20 / median:.0f}"]
        assert row[5:] == ["n/a", f"{median / base:.3f}", f"{expected_ideal[name]:.3f}", f"{cpu_median / base_cpu:.3f}"]
    assert [(modes[f"random-ltd-{k}"]["kept"], modes[f"random-ltd-{k}"]["wrapped_layers"]) for k in (5, 15)] == [
        (5, 2), (15, 2)]
    report = next(line for line in proc.stdout.splitlines() if line.startswith("random-LTD"))
    for k in (5, 15):
        r = modes[f"random-ltd-{k}"]
        assert f"K={k} {r['ratio']:.3f} (ideal {expected_ideal[f'random-ltd-{k}']:.3f}, cpu time " in report
    # ScTD's timed steps are whole cycles: one full pass in every 2 updates
    assert sum(u % 2 == 0 for u in modes["sctd"]["num_updates"]) == 2

    # the ScTD check compares average step costs: means in mean baseline steps
    mean = {name: np.mean(r["step_times_s"]) for name, r in modes.items()}
    check = result["sctd_check"]
    measured, expected = mean["sctd"] / mean["baseline"], mean["importance"] / mean["baseline"] + 0.5
    assert (check["measured_ratio"], check["expected_ratio"]) == pytest.approx((measured, expected), rel=1e-12)
    assert check["difference"] == pytest.approx(measured - expected, abs=1e-12)
    assert check["within_target"] == (abs(measured - expected) <= 0.03)
