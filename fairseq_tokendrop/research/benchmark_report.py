"""The benchmark's results: each mode's step statistics beside its ideal ratio, printed and as JSON."""
import json
import resource
import statistics
from typing import NamedTuple, Optional

import torch

from ..atomic_file import atomic_path
from ..method import flops
from ..method.token_selection import num_kept
from .attention_backends import describe
from .host import device_name
from .step_statistics import SCTD_TARGET, sctd_check, step_statistic

STATISTIC = ("median per step; for ScTD ((F-1)*median(drop-only steps) + median(full-pass steps))/F; "
             "sctd_check: means over the timed steps; "
             "step_times_s wall clock, cpu_times_s process CPU time (cpu only)")


class Summary(NamedTuple):
    kept: int  # --token-drop's kept length
    masked_per_row: int
    dims: object  # the full model's args (layers, dims)
    ideal: dict  # MAC-count ratios of the configuration
    results: dict  # mode name -> its statistics
    sctd_check: Optional[dict]
    sctd_check_cpu_time: Optional[dict]
    process_peak_rss_bytes: int


def mode_ideal_ratio(mode, shape, masked_per_row, vocab, ideal) -> float:
    """A mode's step cost against the baseline's by the MAC count (``flops``)."""
    if mode.layerwise is not None:
        return flops.ideal_ratio(**{**shape, "kept": mode.kept}, masked=masked_per_row, vocab=vocab,
                                 layerwise=mode.layerwise)
    return {"baseline": 1.0, "sctd": ideal["sctd_ratio"]}.get(mode.name, ideal["with_head_ratio"])


def summarise(args, modes, masked_per_row, dims) -> Summary:
    kept = num_kept(args.seq_len, args.token_drop, 0)
    shape = dict(layers=dims.encoder_layers, dim=dims.encoder_embed_dim, ffn=dims.encoder_ffn_embed_dim,
                 seq_len=args.seq_len, kept=kept)
    drop_ratio = flops.ideal_ratio(**shape, masked=masked_per_row, vocab=args.vocab)
    ideal = {
        "encoder_ratio": flops.ideal_ratio(**shape),
        "with_head_ratio": drop_ratio,
        "sctd_ratio": flops.sctd_ideal_ratio(drop_ratio, args.sctd_interval),
        "full_macs_per_sequence": flops.forward_macs(**{**shape, "kept": None}, masked=masked_per_row, vocab=args.vocab),
        "drop_macs_per_sequence": flops.forward_macs(**shape, masked=masked_per_row, vocab=args.vocab),
    }
    results = {}
    for m in modes:
        q1, median, q3 = step_statistic(m.times, m.updates, m.sctd_interval)
        results[m.name] = {
            "sctd_interval": m.sctd_interval,
            "step_times_s": m.times,
            "num_updates": m.updates,
            "median_s": median,
            "mean_s": statistics.fmean(m.times),
            "q1_s": q1,
            "q3_s": q3,
            "min_s": min(m.times),
            "max_s": max(m.times),
            "tokens_per_s": args.batch_size * args.seq_len / median,
            "peak_mem_bytes": m.peak_mem,
            "step_mem_bytes": m.step_mem,
            "ideal_ratio": mode_ideal_ratio(m, shape, masked_per_row, args.vocab, ideal),
            "kept": m.kept,
            "wrapped_layers": m.layerwise,
            "cpu_times_s": m.cpu_times or None,
            "cpu_median_s": step_statistic(m.cpu_times, m.updates, m.sctd_interval)[1] if m.cpu_times else None,
            "attention_backends": m.attention_backends,
        }
    base = results["baseline"]
    for r in results.values():
        r["ratio"] = r["median_s"] / base["median_s"]
        r["cpu_ratio"] = r["cpu_median_s"] / base["cpu_median_s"] if r["cpu_median_s"] else None
    return Summary(kept, masked_per_row, dims, ideal, results, sctd_check(results, args.sctd_interval),
                   sctd_check(results, args.sctd_interval, "cpu_times_s"),
                   resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)  # Linux reports KiB


def print_table(results, cuda):
    mem = "step peak MiB" if cuda else "peak mem"
    print(f"{'mode':<15}{'median s':>10}{'IQR s':>19}{'min-max s':>19}{'tokens/s':>11}"
          f"{mem:>15}{'ratio':>8}{'ideal':>8}" + ("" if cuda else f"{'cpu-time ratio':>16}"))
    for name, r in results.items():
        memory = f"{r['step_mem_bytes'] / 2**20:.0f}" if r["step_mem_bytes"] is not None else "n/a"
        print(f"{name:<15}{r['median_s']:>10.4f}{r['q1_s']:>9.4f}-{r['q3_s']:<9.4f}"
              f"{r['min_s']:>9.4f}-{r['max_s']:<9.4f}{r['tokens_per_s']:>11.0f}{memory:>15}"
              f"{r['ratio']:>8.3f}{r['ideal_ratio']:>8.3f}" + ("" if cuda else f"{r['cpu_ratio']:>16.3f}"))


def print_sctd_check(check, interval, label):
    print(f"ScTD mean step vs token dropping + one baseline step every {interval} ({label}): measured "
          f"{check['measured_ratio']:.3f}, expected {check['expected_ratio']:.3f}, difference "
          f"{check['difference']:+.3f} (target within {SCTD_TARGET}: "
          f"{'yes' if check['within_target'] else 'no'})", end="")
    if check["drop_step_vs_importance"] is None:  # F = 1: no drop-only steps
        print()
        return
    print(f"; drop-only steps / importance {check['drop_step_vs_importance']:.3f}, "
          f"full-pass extra / baseline step {check['full_pass_extra_vs_baseline']:.3f}")


def print_report(args, summary: Summary):
    dims, results, ideal = summary.dims, summary.results, summary.ideal
    cuda = args.device == "cuda"
    print(f"device {device_name(args.device)}, torch {torch.__version__}, {args.precision}; "
          f"N={dims.encoder_layers} d={dims.encoder_embed_dim} ffn={dims.encoder_ffn_embed_dim} "
          f"heads={dims.encoder_attention_heads} V={args.vocab} B={args.batch_size} T={args.seq_len} "
          f"K={summary.kept} M={summary.masked_per_row}/row F={args.sctd_interval}; {args.steps} timed steps/mode "
          f"interleaved, {args.warmup} warm-up" + ("; glibc keeps freed memory" if args.malloc_cache else ""))
    print_table(results, cuda)
    if cuda:
        print("step peak MiB: max_memory_allocated during a step minus what was allocated before it "
              "(activations, gradients, temporaries); the JSON also has the absolute peak")
    else:
        print(f"peak mem: n/a per mode on cpu (modes interleave in one process); "
              f"process peak RSS {summary.process_peak_rss_bytes / 2**20:.0f} MiB")
    print("SDPA backend per kind of layer (full length / cross-attention / kept tokens): " + "; ".join(
        f"{name} {describe(r['attention_backends'])}" for name, r in results.items()))
    print(f"ideal (MACs): encoder {ideal['encoder_ratio']:.4f}, with MLM head {ideal['with_head_ratio']:.4f}, "
          f"ScTD F={args.sctd_interval} {ideal['sctd_ratio']:.4f}")
    ltd = [(name, r) for name, r in results.items() if r["wrapped_layers"] is not None]
    if ltd:
        print(f"random-LTD ({ltd[0][1]['wrapped_layers']} of {dims.encoder_layers} layers) step time / baseline "
              f"against its ideal: " + "; ".join(
                  f"K={r['kept']} {r['ratio']:.3f} (ideal {r['ideal_ratio']:.3f}"
                  + ("" if cuda else f", cpu time {r['cpu_ratio']:.3f}") + ")" for _, r in ltd))
    if summary.sctd_check:
        print_sctd_check(summary.sctd_check, args.sctd_interval, "wall time")
    if summary.sctd_check_cpu_time:
        print_sctd_check(summary.sctd_check_cpu_time, args.sctd_interval, "process CPU time")


def write_json(path, command, args, summary: Summary):
    dims = summary.dims
    payload = {
        "command": command,
        "config": {**vars(args), "layers": dims.encoder_layers, "dim": dims.encoder_embed_dim,
                   "ffn": dims.encoder_ffn_embed_dim, "heads": dims.encoder_attention_heads,
                   "kept": summary.kept, "masked_per_row": summary.masked_per_row},
        "torch": torch.__version__,
        "device": device_name(args.device),
        "statistic": STATISTIC,
        "modes": summary.results,
        "ideal": summary.ideal,
        "sctd_check": summary.sctd_check,
        "sctd_check_cpu_time": summary.sctd_check_cpu_time,
        "process_peak_rss_bytes": summary.process_peak_rss_bytes,
    }
    with atomic_path(path) as tmp, open(tmp, "w") as f:
        json.dump(payload, f, indent=1)
