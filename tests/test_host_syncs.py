"""Device-to-host reads per training step, counted through fairseq's own Trainer on CPU.

A read of a tensor's value on the host (``.item()``, ``float()``, ``int()``, ``bool()``, ``.tolist()``,
``.cpu()``, ``.numpy()``) makes the host wait for the device: on a GPU each one drains the queue.
torch's ``TorchFunctionMode`` sees every such call on a tensor, wherever it is made (fairseq's
trainer, meters and encoder, the plugin, torch's own Python), so counting inside
``Trainer.train_step`` counts the step's reads; what fairseq-train prints every ``--log-interval``
is outside it. Stock fairseq (``--arch roberta --task masked_lm --criterion masked_lm``) on the
same data is the reference: in every mode the plugin's step makes at most one read more.
docs/speed.md lists the counts and what each read is. The criterion's share alone: one read for all
its logged values, which are the floats the old ``float()`` of each value gave.
"""
import traceback
from collections import Counter
from pathlib import Path

import pytest
import torch
from fairseq import metrics
from torch.overrides import TorchFunctionMode

from fairseq_tokendrop.criterions.masked_lm_tokendrop import MaskedLmTokenDropLoss

from conftest import fairseq_trainer

READS = {"item", "__float__", "__int__", "__bool__", "__index__", "tolist", "cpu", "numpy"}
TORCH_DIR = Path(torch.__file__).parent
STOCK = dict(arch="roberta", task="masked_lm")
MODES = {
    "importance": ["--token-drop", "0.5"],
    "random": ["--token-drop", "0.5", "--token-drop-strategy", "random"],
    "sctd": ["--token-drop", "0.5", "--sctd-interval", "2"],  # update 0 has the full pass, update 1 not
    "random-ltd": ["--token-drop-strategy", "random-ltd", "--token-keep-k", "16"],
}
STEPS = 2
AMP = ["--amp"]


class HostReads(TorchFunctionMode):
    """Every read of a tensor's value on the host while active, as 'read file:line' of its caller."""

    def __init__(self):
        super().__init__()
        self.sites = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", None)
        if name in READS and args and isinstance(args[0], torch.Tensor):
            caller = next(frame for frame in reversed(traceback.extract_stack()[:-1])
                          if not Path(frame.filename).is_relative_to(TORCH_DIR))
            self.sites.append(f"{name} {'/'.join(Path(caller.filename).parts[-3:])}:{caller.lineno}")
        return func(*args, **(kwargs or {}))


def reads_per_step(trainer, batches):
    """The read sites of each of the first STEPS updates, one micro-batch each."""
    steps = []
    for batch in batches[:STEPS]:
        with HostReads() as reads:
            trainer.train_step([batch])
        steps.append(reads.sites)
    assert trainer.get_num_updates() == STEPS  # every step was applied
    return steps


def counted(data_bin, save_dir, flags, **kwargs):
    trainer, batches = fairseq_trainer(data_bin, save_dir, *flags, **kwargs)
    if "--amp" in flags:  # fairseq builds torch.cuda.amp's GradScaler, disabled without CUDA: torch's CPU one
        trainer.optimizer._grad_scaler = torch.amp.GradScaler("cpu", init_scale=128.0)
    return reads_per_step(trainer, batches)


@pytest.fixture(scope="module")
def stock(data_bin, tmp_path_factory):
    """The most reads stock fairseq's step made, without and with --amp."""
    flags = ["--criterion", "masked_lm"]
    return {amp: max(len(step) for step in counted(data_bin, tmp_path_factory.mktemp("stock"),
                                                   flags + (AMP if amp else []), **STOCK))
            for amp in (False, True)}


@pytest.mark.slow  # the data-bin fixture runs fairseq-preprocess
@pytest.mark.parametrize("mode,amp", [(mode, False) for mode in MODES] + [("importance", True), ("sctd", True)])
def test_the_plugins_step_reads_the_host_at_most_once_more_than_stock(data_bin, tmp_path, stock, mode, amp):
    steps = counted(data_bin, tmp_path, MODES[mode] + (AMP if amp else []))
    worst = max(steps, key=len)
    assert len(worst) <= stock[amp] + 1, (stock[amp], Counter(worst))


@pytest.mark.slow
def test_the_counter_sees_a_read_added_to_the_step(data_bin, tmp_path):
    trainer, batches = fairseq_trainer(data_bin, tmp_path, *MODES["importance"])
    plain = reads_per_step(trainer, batches)
    trainer, batches = fairseq_trainer(data_bin, tmp_path, *MODES["importance"])
    forwards = []
    # a real hook on the model: one .item() per forward, the way a stray read would sit in the plugin
    trainer.model.encoder.register_forward_hook(lambda module, args, out: forwards.append(out[0].sum().item()))
    hooked = reads_per_step(trainer, batches)
    assert len(forwards) == STEPS
    assert [len(h) - len(p) for h, p in zip(hooked, plain)] == [1] * STEPS
    assert all(any(site.startswith("item ") and "test_host_syncs.py:" in site for site in h) for h in hooked)


def test_the_criterions_logged_values_from_tensors_take_one_read_and_equal_float_of_each():
    """Two micro-batches' outputs as the criterion makes them (float32 losses, int64 counts, Python ints):
    one read, and every smoothed value what float() of each value and Python's sum give."""
    g = torch.Generator().manual_seed(0)
    tensors = [{"loss": torch.rand((), generator=g) * 50, "sample_size": torch.tensor(n), "mlm_correct": torch.tensor(c),
                "kept_tokens": torch.tensor(k), "tokens": torch.tensor(t), "macs": torch.tensor(1e9 + n),
                "kept_len": 16, "train_batches": 1, "sctd_updates": 1, "kl_local": torch.rand((), generator=g),
                "kl_global": torch.rand((), generator=g), "loss_full": torch.rand((), generator=g) * 50,
                "sctd_sample_size": torch.tensor(n), "imp_mean": torch.rand((), generator=g) * 10,
                "imp_std": torch.rand((), generator=g), "imp_logs": 1, "ntokens": 64, "nsentences": 4}
               for n, c, k, t in ((13, 5, 40, 61), (7, 2, 33, 58))]
    floats = [{key: float(value) for key, value in log.items()} for log in tensors]

    def logged(logs):
        """The smoothed values as logged, and the meters' unrounded averages."""
        with metrics.aggregate(new_root=True) as agg:
            MaskedLmTokenDropLoss.reduce_metrics(logs)
            return agg.get_smoothed_values(), {key: meter.avg for key, meter in agg.items() if hasattr(meter, "avg")}

    with HostReads() as reads:
        from_tensors = logged(tensors)
    assert len(reads.sites) == 1, reads.sites
    assert from_tensors == logged(floats)
    assert set(from_tensors[1]) == {"loss", "mlm_acc", "kept_frac", "macs", "kept_len", "kl_local", "kl_global",
                                    "loss_full", "imp_mean", "imp_std"}
