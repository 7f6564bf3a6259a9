"""Measured training-step time of token dropping against stock RoBERTa, in one process.

Modes (each its own model, same initial weights, same batches):
  baseline    stock fairseq ``roberta`` + fairseq's ``masked_lm`` criterion
  importance  ``tokendrop_roberta``, importance strategy (Hou et al., ACL 2022)
  random      ``tokendrop_roberta``, random selection in the token-dropping layout
  sctd        importance + ScTD every F updates (Zhong et al., ACL 2023)
  random-ltd  ``tokendrop_roberta``, random-LTD (Yao et al. 2022) on every layer but the
              first and last, once per kept length of ``--random-ltd-kept``: modes
              ``random-ltd-K``, each with its own ideal ratio

A step is what fairseq's trainer does per update minus its bookkeeping
(``research.mode``): forward through the criterion, loss / sample_size,
backward, fused AdamW step, through the trainer's own importance hooks.
Modes take turns one step at a time, the order rotating every round, so a
noisy shared machine slows every mode alike; each mode's num_updates runs on
across rounds, and the timed steps cover whole ScTD cycles. The statistics
(the ScTD-cycle median, and the ScTD check on means) are described in
``research.step_statistics``, the table and the JSON in ``research.benchmark_report``.

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

import torch
from fairseq.criterions.masked_lm import MaskedLmConfig, MaskedLmLoss

from ..criterions.masked_lm_tokendrop import MaskedLmTokenDropConfig, MaskedLmTokenDropLoss
from ..standalone import StandaloneTask, build_model, made_up_dictionary
from .attention_backends import observed_backends
from .benchmark_report import print_report, summarise, write_json
from .host import set_malloc_thresholds, start
from .mode import Mode, make_batches, model_args
from .step_timing import run_steps

MODES = ("baseline", "importance", "random", "sctd", "random-ltd")


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


def keep_freed_memory() -> bool:
    """Keep memory freed by a step inside the process (glibc ``mallopt``); True if accepted.

    A ScTD full-pass step peaks higher than the others (both passes' activations
    are alive at once). With glibc's default thresholds that extra memory goes
    back to the OS after the step and is faulted in again on every full-pass
    step: 25-45k page faults, 0.1-0.3 s per step in the dev-machine config, a
    cost of the CPU allocator, not of ScTD. CUDA's caching allocator keeps freed
    blocks, so these settings make the CPU measure what a GPU would.
    """
    return set_malloc_thresholds(trim=2**30, mmap=2**30)


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

    summary = summarise(args, modes, masked_per_row, dims)
    print_report(args, summary)
    if args.json:
        write_json(args.json, command, args, summary)


if __name__ == "__main__":
    main()
