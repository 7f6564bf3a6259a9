"""Test-only: ``fairseq-train`` whose ``--ddp-backend c10d`` / ``pytorch_ddp`` also runs on CPU.

Run as ``python tests/train_c10d_on_cpu.py ARGS``, i.e. ``python -m fairseq_cli.train ARGS``
with one change. fairseq's ``DistributedFairseqModel`` (``fairseq/models/distributed_fairseq_model.py``)
builds torch's ``DistributedDataParallel`` with ``device_ids=[args.device_id]`` and
``output_device=args.device_id``; torch accepts those only for a module on one GPU, and
refuses them for a CPU module ("device_ids ... only work with single-device/multiple-device
GPU modules or CPU modules"; for a CPU module they must be None, see torch's
``DistributedDataParallel`` docstring). This file puts a subclass of ``DistributedDataParallel``
in that module's namespace that sets the two to None when every parameter of the module is on
the CPU, and passes every other argument through. Everything else is fairseq's code as it
stands: its c10d branch and its arguments (``broadcast_buffers``, ``bucket_cap_mb``,
``find_unused_parameters``, ``gradient_as_bucket_view``), ``ModuleProxyWrapper``, and the
Trainer's ``no_sync`` for ``--update-freq`` > 1 and its gradient scaling.

What this proves and what it does not: torch's DDP reducer (bucketing, autograd hooks, the
"mark a variable ready only once" check, ``no_sync``) is device-independent and runs here over
gloo; NCCL, CUDA streams and real GPUs are not exercised. A module on a GPU goes through
unchanged.
"""
import logging

# first, as in fairseq-train: its logging setup (INFO to stdout) is the first, so it takes effect
from fairseq_cli.train import cli_main
from torch.nn.parallel import DistributedDataParallel
from fairseq.models import distributed_fairseq_model

logger = logging.getLogger(__name__)
# what the tests look for: that fairseq's c10d branch built torch's DDP
DROPPED = "torch DistributedDataParallel on CPU: fairseq's device_ids {} and output_device {} dropped"


class DistributedDataParallelOnCpu(DistributedDataParallel):
    def __init__(self, module, device_ids=None, output_device=None, **kwargs):
        if all(p.device.type == "cpu" for p in module.parameters()):
            logger.info(DROPPED.format(device_ids, output_device))
            device_ids = output_device = None
        super().__init__(module, device_ids=device_ids, output_device=output_device, **kwargs)


distributed_fairseq_model.DistributedDataParallel = DistributedDataParallelOnCpu

if __name__ == "__main__":
    cli_main()
