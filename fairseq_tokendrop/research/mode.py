"""A mode: one model and its criterion taking training steps as fairseq's trainer takes them, on random batches.

The research tools (the benchmark, the checkpointing cost) time and measure these steps. A step is
what fairseq's ``Trainer.train_step`` does per update minus its bookkeeping: forward through the
criterion, loss / sample_size, backward (through the loss scaler under fp16), the fused AdamW step.
It goes through the same hooks as the task's ``train_step`` and ``optimizer_step``
(``training.trainer_steps``), so the importance scores move as they do in training: once per
applied step, and not at all on a step the loss scaler skipped.
"""
from contextlib import nullcontext

import torch

from ..training import trainer_steps

MASK_FRACTION = 0.15


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


class ScaledOptimizer:
    """A torch optimizer with what fairseq's ``AMPOptimizer`` gives the step: ``backward`` through
    the loss scaler (if any), ``step`` then the scaler's ``update``, and ``scaler``, which
    ``trainer_steps.optimizer_step`` reads to tell a step the scaler skipped."""

    def __init__(self, optimizer: torch.optim.Optimizer, scaler=None):
        self.optimizer, self.scaler = optimizer, scaler

    def backward(self, loss):
        (loss if self.scaler is None else self.scaler.scale(loss)).backward()

    def step(self):
        if self.scaler is None:
            self.optimizer.step()
            return
        self.scaler.step(self.optimizer)
        self.scaler.update()

    def zero_grad(self):
        self.optimizer.zero_grad(set_to_none=True)


class Mode:
    def __init__(self, name, model, criterion, sctd_interval, args, kept=None):
        self.name, self.model, self.criterion = name, model.to(args.device), criterion
        self.sctd_interval = sctd_interval
        self.kept = kept  # random-LTD's kept length; the others use --token-drop
        ltd_layers = getattr(model.encoder, "layerwise_layers", None)  # stock RoBERTa has none
        self.layerwise = None if ltd_layers is None else len(ltd_layers)
        # fused: one kernel per step. On the 2-core dev machine the default foreach
        # AdamW took 0.3-1 s per step for 12M parameters (fused: 0.02-0.1 s), a cost
        # equal in every mode that would pull the ratios towards 1. fairseq itself
        # uses apex's FusedAdam on GPU when it can.
        self.optimizer = ScaledOptimizer(torch.optim.AdamW(self.model.parameters(), lr=1e-4, fused=True),
                                         torch.amp.GradScaler(args.device) if args.precision == "fp16" else None)
        dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(args.precision)
        self.autocast = (lambda: torch.autocast(args.device, dtype=dtype)) if dtype else nullcontext
        self.num_updates = 0  # as fairseq's trainer: the first update is number 0
        self.times, self.cpu_times, self.updates = [], [], []
        self.peak_mem = self.step_mem = None
        self.attention_backends = None

    def step(self, sample):
        self.model.train()
        self.model.set_num_updates(self.num_updates)
        with trainer_steps.micro_batch(self.model, ignore_grad=False):
            with self.autocast():
                loss, sample_size, _ = self.criterion(self.model, sample)
            self.optimizer.backward(loss / sample_size)  # fairseq normalises gradients by the sample size
        with trainer_steps.optimizer_step(self.model, self.optimizer):
            self.optimizer.step()
        # freed after the step, as fairseq's zero_grad frees them; None gradients also mark the next
        # step a new attempt for micro_batch, as fairseq's zero_grad before each attempt does
        self.optimizer.zero_grad()
        self.num_updates += 1
