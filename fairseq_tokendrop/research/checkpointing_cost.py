"""Peak memory and time of a ScTD update with and without ``--checkpoint-activations`` (and with
``--offload-activations``), in one process.

The update is a ScTD update with its full pass (``--sctd-interval 1``: every update has one, and
it is the update that holds the most activations: both passes' at once), as the benchmark steps
(``research.mode.Mode.step``: forward through the criterion, backward, fused AdamW, the
importance update) on the benchmark's random batches. The models start from the same weights and
take turns, one update each, so a noisy shared machine slows all alike. Offloading moves the layers'
inputs to CPU memory: on a CPU run it changes nothing, so its row is read on CUDA.

Memory of an update: what it needs on top of what the process held before it (weights, optimizer
state; gradients are freed after each update, as fairseq's ``zero_grad`` does).

- CUDA: ``torch.cuda.max_memory_allocated`` during the update minus ``memory_allocated`` before.
- CPU (Linux): the peak resident set size during the update minus the resident size before it.
  The peak is reset before each update through ``/proc/self/clear_refs`` (``5``: "reset the
  peak resident set size", Linux ``proc(5)``) and read back as ``VmHWM``. glibc is told to map
  every allocation of 64 KiB or more on its own (``M_MMAP_THRESHOLD``), so what an update frees
  goes back to the system and the next update's peak is its own.

Time: the median wall time of the timed updates, and on CPU the median process CPU time (time the
process was descheduled by other load does not count there; with ``--threads 1`` it is the compute).

    python scripts/checkpointing_cost.py --layers 12 --dim 256 --ffn 1024 --heads 4 \\
        --vocab 8000 --seq-len 256 --batch-size 8 --steps 3 --json out.json
"""
import argparse
import json
import re
import statistics
import time

import torch

from ..atomic_file import atomic_path
from ..criterions.masked_lm_tokendrop import MaskedLmTokenDropConfig, MaskedLmTokenDropLoss
from ..errors import TokendropError
from ..standalone import StandaloneTask, build_model, made_up_dictionary
from .host import device_name, set_malloc_thresholds, start
from .mode import Mode, make_batches, model_args

CONFIGS = {  # name: (--checkpoint-activations, --offload-activations)
    "plain": (False, False),
    "checkpointed": (True, False),
    "offloaded": (True, True),
}
MMAP_EVERY_BYTES = 64 * 1024


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--layers", type=int, default=12)
    p.add_argument("--dim", type=int, default=256)
    p.add_argument("--ffn", type=int, default=1024)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--vocab", type=int, default=8000, help="dictionary size, specials and <mask> included")
    p.add_argument("--seq-len", type=int, default=256)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--token-drop", type=float, default=0.5, metavar="P")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--warmup", type=int, default=1, help="untimed updates per model (the first builds lazy state)")
    p.add_argument("--steps", type=int, default=3, help="timed updates per model")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--json", metavar="OUT", help="write the results here as JSON")
    args = p.parse_args(argv)
    args.precision = "fp32"  # what mode.Mode reads
    if args.device == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda: no CUDA device")
    if args.warmup < 1 or args.steps < 1:
        p.error("--warmup and --steps must be >= 1")
    return args


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        return int(re.search(rf"^{field}:\s+(\d+) kB", f.read(), re.M).group(1))


def measured_update(mode: Mode, sample, device: str):
    """(wall seconds, process CPU seconds, bytes the update needed on top of what was held before it)."""
    if device == "cuda":
        torch.cuda.synchronize()
        before = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
    else:
        before = _status_kib("VmRSS") * 1024
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    start, cpu_start = time.perf_counter(), time.process_time()
    mode.step(sample)
    if device == "cuda":
        torch.cuda.synchronize()
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    peak = torch.cuda.max_memory_allocated() if device == "cuda" else _status_kib("VmHWM") * 1024
    return seconds, cpu_seconds, peak - before


def build_modes(args, dictionary):
    task = StandaloneTask(dictionary, args.seq_len)
    modes = {}
    for name, (checkpointed, offloaded) in CONFIGS.items():
        torch.manual_seed(args.seed)  # same initial weights
        model = build_model("tokendrop_roberta_base", dictionary, **model_args(
            args, token_drop=args.token_drop, checkpoint_activations=checkpointed, offload_activations=offloaded))
        criterion = MaskedLmTokenDropLoss(MaskedLmTokenDropConfig(sctd_interval=1), task)
        modes[name] = Mode(name, model, criterion, 1, args)
    return modes


def main(argv=None):
    command, args = start(parse_args, argv)
    # what an update frees goes back to the system, so the next update's peak is its own
    if args.device == "cpu" and not set_malloc_thresholds(mmap=MMAP_EVERY_BYTES):
        raise TokendropError("checkpointing_cost: on cpu the memory measure needs glibc (mallopt)")
    dictionary = made_up_dictionary(args.vocab)
    samples, _ = make_batches(dictionary, args)
    modes = build_modes(args, dictionary)
    results = {name: {"seconds": [], "cpu_seconds": [], "bytes": []} for name in modes}
    for i in range(args.warmup + args.steps):
        for name, mode in (modes.items() if i % 2 == 0 else reversed(modes.items())):
            measured = measured_update(mode, samples[i % len(samples)], args.device)
            if i >= args.warmup:
                for key, value in zip(("seconds", "cpu_seconds", "bytes"), measured):
                    results[name][key].append(value)
    for r in results.values():
        r["median_s"], r["median_cpu_s"] = statistics.median(r["seconds"]), statistics.median(r["cpu_seconds"])
        r["peak_bytes"] = max(r["bytes"])
    plain = results["plain"]
    print(f"device {device_name(args.device)}, torch {torch.__version__}; N={args.layers} d={args.dim} "
          f"ffn={args.ffn} heads={args.heads} V={args.vocab} B={args.batch_size} T={args.seq_len} "
          f"drop={args.token_drop}; ScTD update with its full pass; {args.steps} timed updates each, "
          f"{args.warmup} warm-up, taking turns")
    print(f"{'':<14}{'update peak MiB':>17}{'median s':>10}{'median CPU s':>14}")
    for name, r in results.items():
        print(f"{name:<14}{r['peak_bytes'] / 2**20:>17.0f}{r['median_s']:>10.3f}{r['median_cpu_s']:>14.3f}")
    for name, r in results.items():
        if r is not plain:
            print(f"{name} / plain: memory {r['peak_bytes'] / plain['peak_bytes']:.2f}, "
                  f"time {r['median_s'] / plain['median_s']:.2f}, "
                  f"CPU time {r['median_cpu_s'] / plain['median_cpu_s']:.2f}")
    if args.json:
        with atomic_path(args.json) as tmp, open(tmp, "w") as f:
            json.dump({"command": command, "config": vars(args), "torch": torch.__version__,
                       "device": device_name(args.device), "results": results}, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
