"""The FLOP counter against hand counts and published anchors; the benchmark end to end."""
import json
import statistics
import subprocess
import sys

import pytest

from fairseq_tokendrop.method import flops

from conftest import REPO


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


def test_bert_base_anchor():
    # Counted by hand from the matmul MACs (QKV/O 4d^2, FFN 2*d*ffn per token, attention 2*T*d per
    # query): ~0.746 for the encoder, ~0.76 with the head on ~77 masked tokens and a 50k vocabulary
    # (BERT-base, T 512, keep 256).
    assert flops.ideal_ratio(12, 768, 3072, 512, 256) == pytest.approx(0.746, abs=0.01)
    assert flops.ideal_ratio(12, 768, 3072, 512, 256, 77, 50_000) == pytest.approx(0.76, abs=0.01)


def test_sctd_average_adds_one_full_pass_every_f_updates():
    drop = 0.76
    per_update = ((10 - 1) / 10) * drop + (1 / 10) * (drop + 1.0)
    assert flops.sctd_ideal_ratio(drop, 10) == pytest.approx(per_update)
    assert flops.sctd_ideal_ratio(drop, 0) == drop


def cycle_statistic(times, updates, interval):
    """The benchmark's documented step statistic, recomputed independently."""
    if interval == 0:
        return statistics.median(times)
    full = statistics.median(t for t, u in zip(times, updates) if u % interval == 0)
    drop = statistics.median(t for t, u in zip(times, updates) if u % interval != 0)
    return ((interval - 1) * drop + full) / interval


@pytest.mark.slow
def test_benchmark_runs_end_to_end_on_cpu(tmp_path):
    out = tmp_path / "bench.json"
    flags = ["--layers", "4", "--dim", "16", "--ffn", "32", "--heads", "2", "--vocab", "60",
             "--seq-len", "20", "--batch-size", "2", "--device", "cpu", "--token-drop", "0.5",
             "--sctd-interval", "2", "--warmup", "1", "--steps", "4", "--threads", "1", "--json", str(out)]
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "benchmark.py"), *flags],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.splitlines()[0].endswith(" ".join(flags))
    result = json.loads(out.read_text())

    assert result["torch"] and result["device"] and result["command"].endswith(" ".join(flags))
    config = result["config"]
    assert (config["kept"], config["masked_per_row"], config["steps"]) == (10, 3, 4)
    drop_ideal = flops.ideal_ratio(4, 16, 32, 20, 10, 3, 60)
    assert result["ideal"]["with_head_ratio"] == pytest.approx(drop_ideal)
    expected_ideal = {"baseline": 1.0, "importance": drop_ideal, "random": drop_ideal, "sctd": drop_ideal + 0.5}

    modes = result["modes"]
    assert set(modes) == set(expected_ideal)
    base = cycle_statistic(modes["baseline"]["step_times_s"], modes["baseline"]["num_updates"], 0)
    for name, r in modes.items():
        times, updates = r["step_times_s"], r["num_updates"]
        assert len(times) == len(updates) == 4 and all(t > 0 for t in times)
        assert r["min_s"] <= r["q1_s"] <= r["median_s"] <= r["q3_s"] <= r["max_s"]
        assert r["mean_s"] == pytest.approx(statistics.fmean(times))
        assert len(r["cpu_times_s"]) == 4 and r["cpu_ratio"] > 0
        assert r["tokens_per_s"] == pytest.approx(2 * 20 / r["median_s"])
        assert r["peak_mem_bytes"] is None  # not measurable per mode on cpu
        assert r["median_s"] == pytest.approx(cycle_statistic(times, updates, r["sctd_interval"]))
        assert r["ratio"] == pytest.approx(r["median_s"] / base)
        assert r["ideal_ratio"] == pytest.approx(expected_ideal[name])
    # ScTD's timed steps are whole cycles: one full pass in every 2 updates
    assert sum(u % 2 == 0 for u in modes["sctd"]["num_updates"]) == 2

    # the ScTD check compares average step costs: means in mean baseline steps
    mean = {name: statistics.fmean(r["step_times_s"]) for name, r in modes.items()}
    check = result["sctd_check"]
    assert check["measured_ratio"] == pytest.approx(mean["sctd"] / mean["baseline"])
    assert check["expected_ratio"] == pytest.approx(mean["importance"] / mean["baseline"] + 0.5)
    assert check["difference"] == pytest.approx(check["measured_ratio"] - check["expected_ratio"])
    assert check["within_target"] == (abs(check["difference"]) <= check["target"])
