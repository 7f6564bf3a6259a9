"""Device-to-host reads per training step, counted through fairseq's own Trainer on CPU.

A read of a tensor's value on the host (``.item()``, ``float()``, ``int()``, ``bool()``, ``.tolist()``,
``.cpu()``, ``.numpy()``) makes the host wait for the device: on a GPU each one drains the queue.
torch's ``TorchFunctionMode`` sees every such call on a tensor, wherever it is made (fairseq's
trainer, meters and encoder, the plugin, torch's own Python), so counting inside
``Trainer.train_step`` counts the step's reads; what fairseq-train prints every ``--log-interval``
is outside it. Stock fairseq (``--arch roberta --task masked_lm --criterion masked_lm``) on the
same data is the reference: in every mode the plugin's step makes at most one read more.
docs/speed.md lists the counts and what each read is.
"""
import traceback
from collections import Counter
from pathlib import Path

import pytest
import torch
from torch.overrides import TorchFunctionMode

from conftest import fairseq_trainer

pytestmark = pytest.mark.slow  # the data-bin fixture runs fairseq-preprocess

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


@pytest.mark.parametrize("mode,amp", [(mode, False) for mode in MODES] + [("importance", True), ("sctd", True)])
def test_the_plugins_step_reads_the_host_at_most_once_more_than_stock(data_bin, tmp_path, stock, mode, amp):
    steps = counted(data_bin, tmp_path, MODES[mode] + (AMP if amp else []))
    worst = max(steps, key=len)
    assert len(worst) <= stock[amp] + 1, (stock[amp], Counter(worst))


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
