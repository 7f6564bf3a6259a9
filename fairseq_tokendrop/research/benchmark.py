"""Measured training-step time of token dropping against stock RoBERTa, in one process.

Modes (each its own model, same initial weights, same batches):
  baseline    stock fairseq ``roberta`` + fairseq's ``masked_lm`` criterion
  importance  ``tokendrop_roberta``, importance strategy (Hou et al., ACL 2022)
  random      ``tokendrop_roberta``, random selection in the token-dropping layout
  sctd        importance + ScTD every F updates (Zhong et al., ACL 2023)
  random-ltd  ``tokendrop_roberta``, random-LTD (Yao et al. 2022) on every layer but the
              first and last, once per kept length of ``--random-ltd-kept``: modes
              ``random-ltd-K``, each with its own ideal ratio

A step is what fairseq's trainer does per update minus its bookkeeping:
forward through the criterion, loss / sample_size, backward, fused AdamW step.
Modes take turns one step at a time, the order rotating every round, so a
noisy shared machine slows every mode alike; each mode's num_updates runs on
across rounds, and the timed steps cover whole ScTD cycles.

Step statistic: for a mode with ScTD interval F, steps with
num_updates % F == 0 (with a full pass) and the others are two strata, and
the statistic is ((F-1) * median(others) + median(full-pass steps)) / F, the
average cost per update over a cycle; for the other modes it is the plain
median. The spread columns apply the same rule to the quartiles.

The ScTD check compares average step costs, i.e. means over the timed steps
(whole cycles): mean(sctd) / mean(baseline) against "token dropping plus one
full step every F", mean(importance) / mean(baseline) + 1/F. Means, because
averages add up and medians do not: a full-pass step sums a drop pass and a
full pass, and under right-skewed noise the median of a sum exceeds the sum
of the medians (on the dev machine a median-based check read 0.02-0.05
higher at F=5).

After the timed steps, one more step per mode runs under the profiler to
record which SDPA backend (flash, memory-efficient, cuDNN, math) each kind of
layer used (``attention_backends``); it is not timed.

On cpu the process CPU time of each step is recorded too: time the process
was descheduled by other load does not count there, so its ratio separates
the model's cost from the machine's noise. Also on cpu, glibc is told to keep
freed memory (see ``keep_freed_memory``), as CUDA's caching allocator does.

Precision: fp16/bf16 run the forward under ``torch.autocast`` with fp32
weights and optimizer (fairseq's ``--amp``, not ``--fp16``'s ``model.half()``);
fp16 adds a GradScaler. Ideal ratios come from ``fairseq_tokendrop.method.flops``.

    python scripts/benchmark.py --layers 4 --dim 64 --ffn 256 --heads 4 \
        --vocab 1000 --seq-len 128 --batch-size 4 --steps 10 --json out.json
"""
import argparse
import ctypes
import ctypes.util
import json
import platform
import resource
import shlex
import sys
import time
from contextlib import nullcontext

import torch
from fairseq.criterions.masked_lm import MaskedLmConfig, MaskedLmLoss

from fairseq_tokendrop.method import flops
from fairseq_tokendrop.research.attention_backends import describe, observed_backends
from fairseq_tokendrop.atomic_file import atomic_path
from fairseq_tokendrop.criterions.masked_lm_tokendrop import MaskedLmTokenDropConfig, MaskedLmTokenDropLoss
from fairseq_tokendrop.method.importance import find_token_importance
from fairseq_tokendrop.standalone import StandaloneTask, build_model, made_up_dictionary
from fairseq_tokendrop.method.token_selection import num_kept

MODES = ("baseline", "importance", "random", "sctd", "random-ltd")
MASK_FRACTION = 0.15
SCTD_TARGET = 0.03  # the bound on |measured - expected| ScTD cost, in baseline steps


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--arch", choices=("base", "large"), default="base",
                   help="RoBERTa size whose dims apply where --layers/--dim/--ffn/--heads are not given")
    p.add_argument("--layers", type=int)
    p.add_argument("--dim", type=int)
    p.add_argument("--ffn", type=int)
    p.add_argument("--heads", type=int)
    p.add_argument("--vocab", type=int, default=50265, help="dictionary size, specials and <mask> included")
    p.add_argument("--seq-len", type=int, default=512)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--device", choices=("cpu", "cuda"), default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--precision", choices=("fp32", "fp16", "bf16"), default="fp32")
    p.add_argument("--token-drop", type=float, default=0.5, metavar="P")
    p.add_argument("--sctd-interval", type=int, default=10, metavar="F")
    p.add_argument("--random-ltd-kept", metavar="K,K,...",
                   help="the kept lengths random-ltd is timed at (default T/4, T/2 and 3T/4)")
    p.add_argument("--modes", default=",".join(MODES), help="comma-separated subset; baseline is always run")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps per mode (the first is a ScTD step)")
    p.add_argument("--steps", type=int, default=20,
                   help="timed steps per mode, rounded up to whole ScTD cycles when sctd runs")
    p.add_argument("--threads", type=int,
                   help="torch CPU threads (default: torch's). On a shared machine 1 is steadier: "
                        "an OpenMP region waits for its slowest thread, so one busy core stalls them all")
    p.add_argument("--no-malloc-cache", action="store_true",
                   help="cpu: leave glibc's default trimming on (see keep_freed_memory)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--json", metavar="OUT", help="write the results here as JSON")
    args = p.parse_args(argv)

    args.modes = ["baseline"] + [m for m in args.modes.split(",") if m and m != "baseline"]
    unknown = set(args.modes) - set(MODES)
    if unknown:
        p.error(f"--modes: unknown {sorted(unknown)}; choose from {MODES}")
    args.random_ltd_kept = parse_kept_lengths(p, args.random_ltd_kept, args.seq_len)
    if "sctd" in args.modes and args.sctd_interval < 1:
        p.error("--sctd-interval must be >= 1 when sctd runs")
    if "sctd" in args.modes:
        args.steps = -(-args.steps // args.sctd_interval) * args.sctd_interval
    if args.warmup < 1:
        p.error("--warmup must be >= 1 (the first step also builds lazy state)")
    if args.device == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda: no CUDA device")
    if args.precision == "fp16" and args.device != "cuda":
        p.error("--precision fp16 needs --device cuda (use bf16 on cpu)")
    return args


def parse_kept_lengths(parser, text, seq_len):
    if not text:
        return sorted({max(1, seq_len * q // 4) for q in (1, 2, 3)})
    try:
        lengths = [int(k) for k in text.split(",")]
    except ValueError:
        parser.error(f"--random-ltd-kept: expected comma-separated integers, got {text!r}")
    if not all(0 < k < seq_len for k in lengths):
        parser.error(f"--random-ltd-kept: every kept length must be in [1, --seq-len {seq_len}), got {text}")
    return lengths


def keep_freed_memory():
    """Keep memory freed by a step inside the process (glibc ``mallopt``); True if accepted.

    A ScTD full-pass step peaks higher than the others (both passes' activations
    are alive at once). With glibc's default thresholds that extra memory goes
    back to the OS after the step and is faulted in again on every full-pass
    step: 25-45k page faults, 0.1-0.3 s per step in the dev-machine config, a
    cost of the CPU allocator, not of ScTD. CUDA's caching allocator keeps freed
    blocks, so these settings make the CPU measure what a GPU would.
    """
    m_trim_threshold, m_mmap_threshold = -1, -3  # glibc malloc.h
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"))
        return bool(libc.mallopt(m_trim_threshold, 2**30)) and bool(libc.mallopt(m_mmap_threshold, 2**30))
    except (OSError, AttributeError):  # not glibc
        return False


def model_args(args, **extra):
    """The command-line options of every mode's model; None dims are left to the arch."""
    dims = dict(encoder_layers=args.layers, encoder_embed_dim=args.dim,
                encoder_ffn_embed_dim=args.ffn, encoder_attention_heads=args.heads)
    return dict(max_positions=args.seq_len, tokens_per_sample=args.seq_len,
                **{k: v for k, v in dims.items() if v is not None}, **extra)


def make_batches(dictionary, args, n=4):
    """``n`` samples: random words, <s> first, </s> last, round(15% of T) positions masked per row."""
    g = torch.Generator().manual_seed(args.seed)
    B, T = args.batch_size, args.seq_len
    masked_per_row = round(MASK_FRACTION * T)
    samples = []
    for _ in range(n):
        tokens = torch.randint(dictionary.nspecial, len(dictionary) - 1, (B, T), generator=g)
        tokens[:, 0], tokens[:, -1] = dictionary.bos(), dictionary.eos()
        positions = torch.stack([torch.randperm(T - 2, generator=g)[:masked_per_row] + 1 for _ in range(B)])
        target = torch.full_like(tokens, dictionary.pad())
        target.scatter_(1, positions, tokens.gather(1, positions))
        tokens.scatter_(1, positions, dictionary.index("<mask>"))
        samples.append({
            "net_input": {"src_tokens": tokens.to(args.device)},
            "target": target.to(args.device),
            "ntokens": B * T,
            "nsentences": B,
        })
    return samples, masked_per_row


class Mode:
    def __init__(self, name, model, criterion, sctd_interval, args, kept=None):
        self.name, self.model, self.criterion = name, model.to(args.device), criterion
        self.sctd_interval = sctd_interval
        self.kept = kept  # random-LTD's kept length; the others use --token-drop
        ltd_layers = getattr(getattr(model, "encoder", None), "random_ltd_layers", None)
        self.layerwise = None if ltd_layers is None else len(ltd_layers)
        # as fairseq's task.optimizer_step: the scores move once per applied step
        self.importance = None if name == "baseline" else find_token_importance(self.model)
        # fused: one kernel per step. On the 2-core dev machine the default foreach
        # AdamW took 0.3-1 s per step for 12M parameters (fused: 0.02-0.1 s), a cost
        # equal in every mode that would pull the ratios towards 1. fairseq itself
        # uses apex's FusedAdam on GPU when it can.
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=1e-4, fused=True)
        self.scaler = torch.amp.GradScaler(args.device) if args.precision == "fp16" else None
        dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(args.precision)
        self.autocast = (lambda: torch.autocast(args.device, dtype=dtype)) if dtype else nullcontext
        self.num_updates = 0  # as fairseq's trainer: the first update is number 0
        self.times, self.cpu_times, self.updates = [], [], []
        self.peak_mem = self.step_mem = None
        self.attention_backends = None

    def step(self, sample):
        self.model.train()
        self.model.set_num_updates(self.num_updates)
        with self.autocast():
            loss, sample_size, _ = self.criterion(self.model, sample)
        loss = loss / sample_size  # fairseq normalises gradients by the sample size
        (self.scaler.scale(loss) if self.scaler else loss).backward()
        if self.scaler:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        if self.importance is not None:
            self.importance.apply_pending()
        self.optimizer.zero_grad(set_to_none=True)
        self.num_updates += 1


def build_modes(args, dictionary):
    task = StandaloneTask(dictionary, args.seq_len)
    size = args.arch
    modes = []
    for name in args.modes:
        if name == "random-ltd":
            for kept in args.random_ltd_kept:
                torch.manual_seed(args.seed)
                model = build_model(f"tokendrop_roberta_{size}", dictionary, **model_args(
                    args, token_keep_k=kept, token_drop_strategy="random-ltd"))
                criterion = MaskedLmTokenDropLoss(MaskedLmTokenDropConfig(), task)
                modes.append(Mode(f"random-ltd-{kept}", model, criterion, 0, args, kept))
            continue
        torch.manual_seed(args.seed)  # same initial weights in every mode
        if name == "baseline":
            model = build_model(f"roberta_{size}", dictionary, **model_args(args))
            criterion, interval = MaskedLmLoss(MaskedLmConfig(tpu=False), task), 0
        else:
            strategy = "random" if name == "random" else "importance"
            model = build_model(f"tokendrop_roberta_{size}", dictionary, **model_args(
                args, token_drop=args.token_drop, token_drop_strategy=strategy))
            interval = args.sctd_interval if name == "sctd" else 0
            criterion = MaskedLmTokenDropLoss(MaskedLmTokenDropConfig(sctd_interval=interval), task)
        modes.append(Mode(name, model, criterion, interval, args))
    return modes, modes[0].model.args  # modes[0] is the baseline: the full model's dims


def run_steps(mode, samples, n_steps, device, record):
    """``n_steps`` steps of one mode; per-step seconds appended when ``record``."""
    cuda = device == "cuda"
    if cuda:
        torch.cuda.synchronize()
        resident = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        events = []
    for _ in range(n_steps):
        sample = samples[mode.num_updates % len(samples)]
        if record:
            mode.updates.append(mode.num_updates)
        if cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            mode.step(sample)
            end.record()
            events.append((start, end))
            continue
        wall, cpu = time.perf_counter(), time.process_time()
        mode.step(sample)
        if record:
            mode.times.append(time.perf_counter() - wall)
            mode.cpu_times.append(time.process_time() - cpu)
    if cuda:
        torch.cuda.synchronize()
        if record:
            mode.times.extend(s.elapsed_time(e) / 1000.0 for s, e in events)
            peak = torch.cuda.max_memory_allocated()
            mode.peak_mem = max(mode.peak_mem or 0, peak)
            mode.step_mem = max(mode.step_mem or 0, peak - resident)


def mean(values):
    return sum(values) / len(values)


def quantile(values, q):
    s = sorted(values)
    pos = q * (len(s) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def step_statistic(times, updates, interval, q=0.5):
    """The module docstring's rule: plain quantile, or the ScTD-cycle average of strata quantiles."""
    if interval <= 0:
        return quantile(times, q)
    full = [t for t, u in zip(times, updates) if u % interval == 0]
    drop = [t for t, u in zip(times, updates) if u % interval != 0]
    if not drop:  # interval 1: every step is a full-pass step
        return quantile(full, q)
    return ((interval - 1) * quantile(drop, q) + quantile(full, q)) / interval


def summarise(args, modes, masked_per_row, dims):
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


    def ideal_ratio(m):
        if m.layerwise is not None:
            return flops.ideal_ratio(**{**shape, "kept": m.kept}, masked=masked_per_row, vocab=args.vocab,
                                     layerwise=m.layerwise)
        return 1.0 if m.name == "baseline" else ideal["sctd_ratio"] if m.name == "sctd" else drop_ratio

    results = {}
    for m in modes:
        stat = {q: step_statistic(m.times, m.updates, m.sctd_interval, q) for q in (0.25, 0.5, 0.75)}
        results[m.name] = {
            "sctd_interval": m.sctd_interval,
            "step_times_s": m.times,
            "num_updates": m.updates,
            "median_s": stat[0.5],
            "mean_s": mean(m.times),
            "q1_s": stat[0.25],
            "q3_s": stat[0.75],
            "min_s": min(m.times),
            "max_s": max(m.times),
            "tokens_per_s": args.batch_size * args.seq_len / stat[0.5],
            "peak_mem_bytes": m.peak_mem,
            "step_mem_bytes": m.step_mem,
            "ideal_ratio": ideal_ratio(m),
            "kept": m.kept,
            "wrapped_layers": m.layerwise,
            "cpu_times_s": m.cpu_times or None,
            "cpu_median_s": step_statistic(m.cpu_times, m.updates, m.sctd_interval) if m.cpu_times else None,
            "attention_backends": m.attention_backends,
        }
    base = results["baseline"]
    for r in results.values():
        r["ratio"] = r["median_s"] / base["median_s"]
        r["cpu_ratio"] = r["cpu_median_s"] / base["cpu_median_s"] if r["cpu_median_s"] else None
    return kept, ideal, results


def sctd_check(results, interval, times="step_times_s"):
    """ScTD's average step cost against 'token dropping + one baseline step every F',
    in mean baseline steps (see the module docstring)."""
    if "sctd" not in results or "importance" not in results or not results["sctd"][times]:
        return None
    s = results["sctd"]
    base, imp = mean(results["baseline"][times]), mean(results["importance"][times])
    full = [t for t, u in zip(s[times], s["num_updates"]) if u % interval == 0]
    drop = [t for t, u in zip(s[times], s["num_updates"]) if u % interval != 0]
    measured = mean(s[times]) / base
    expected = imp / base + 1.0 / interval
    return {
        "measured_ratio": measured,
        "expected_ratio": expected,
        "difference": measured - expected,
        "target": SCTD_TARGET,
        "within_target": abs(measured - expected) <= SCTD_TARGET,
        # where a miss comes from: the drop-only steps against plain token dropping,
        # and the extra cost of a full-pass step against one baseline step
        "drop_step_vs_importance": mean(drop) / imp if drop else None,
        "full_pass_extra_vs_baseline": (mean(full) - mean(drop)) / base if drop else None,
    }


def device_name(device):
    if device == "cuda":
        return torch.cuda.get_device_name()
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            model = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{model}, {torch.get_num_threads()} threads"


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


def write_json(path, payload):
    with atomic_path(path) as tmp, open(tmp, "w") as f:
        json.dump(payload, f, indent=1)


def start(parse, argv):
    """(the command line as run, its parsed arguments): the line goes first on stdout, so a saved
    output says what made it; ``--threads`` applies before any torch work."""
    command = shlex.join(getattr(sys, "orig_argv", [sys.executable] + sys.argv))
    print(command, flush=True)
    args = parse(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    return command, args


def main(argv=None):
    command, args = start(parse_args, argv)
    args.malloc_cache = args.device == "cpu" and not args.no_malloc_cache and keep_freed_memory()
    dictionary = made_up_dictionary(args.vocab)
    samples, masked_per_row = make_batches(dictionary, args)
    modes, dims = build_modes(args, dictionary)

    for mode in modes:
        run_steps(mode, samples, args.warmup, args.device, record=False)
    for r in range(args.steps):
        shift = r % len(modes)  # rotate the order so no mode always follows the same one
        for mode in modes[shift:] + modes[:shift]:
            run_steps(mode, samples, 1, args.device, record=True)
    for mode in modes:
        mode.attention_backends = observed_backends(
            lambda: run_steps(mode, samples, 1, args.device, record=False), args.seq_len)

    kept, ideal, results = summarise(args, modes, masked_per_row, dims)
    cuda = args.device == "cuda"
    print(f"device {device_name(args.device)}, torch {torch.__version__}, {args.precision}; "
          f"N={dims.encoder_layers} d={dims.encoder_embed_dim} ffn={dims.encoder_ffn_embed_dim} "
          f"heads={dims.encoder_attention_heads} V={args.vocab} B={args.batch_size} T={args.seq_len} "
          f"K={kept} M={masked_per_row}/row F={args.sctd_interval}; {args.steps} timed steps/mode "
          f"interleaved, {args.warmup} warm-up" + ("; glibc keeps freed memory" if args.malloc_cache else ""))
    print_table(results, cuda)
    process_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB
    if cuda:
        print("step peak MiB: max_memory_allocated during a step minus what was allocated before it "
              "(activations, gradients, temporaries); the JSON also has the absolute peak")
    else:
        print(f"peak mem: n/a per mode on cpu (modes interleave in one process); "
              f"process peak RSS {process_peak / 2**20:.0f} MiB")
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
    check = sctd_check(results, args.sctd_interval)
    cpu_check = sctd_check(results, args.sctd_interval, "cpu_times_s")
    if check:
        print_sctd_check(check, args.sctd_interval, "wall time")
    if cpu_check:
        print_sctd_check(cpu_check, args.sctd_interval, "process CPU time")

    if args.json:
        write_json(args.json, {
            "command": command,
            "config": {**vars(args), "layers": dims.encoder_layers, "dim": dims.encoder_embed_dim,
                       "ffn": dims.encoder_ffn_embed_dim, "heads": dims.encoder_attention_heads,
                       "kept": kept, "masked_per_row": masked_per_row},
            "torch": torch.__version__,
            "device": device_name(args.device),
            "statistic": "median per step; for ScTD ((F-1)*median(drop-only steps) + median(full-pass steps))/F; "
                         "sctd_check: means over the timed steps; "
                         "step_times_s wall clock, cpu_times_s process CPU time (cpu only)",
            "modes": results,
            "ideal": ideal,
            "sctd_check": check,
            "sctd_check_cpu_time": cpu_check,
            "process_peak_rss_bytes": process_peak,
        })


if __name__ == "__main__":
    main()
