"""Activation checkpointing of encoder layers that works under torch DDP when a layer runs twice.

``--checkpoint-activations`` (fairseq's name, from its transformer; RoBERTa in fairseq reads the
config field but has no flag, so the plugin's model declares it, ``models/tokendrop_config.py``)
keeps only each layer's input in the forward and recomputes the layer in the backward (Chen et al. 2016, "Training Deep Nets with Sublinear Memory Cost").
``--offload-activations`` also keeps those inputs in CPU memory, as fairseq's does.

Why not fairseq's ``checkpoint_wrapper``: it is reentrant (an autograd Function whose backward
recomputes the layer and calls ``torch.autograd.backward`` on it). Each call of a checkpointed
layer then delivers its parameters' gradients in a backward of its own, and each delivery fires
the parameters' gradient-accumulation hooks, which is where torch's ``DistributedDataParallel``
counts a parameter as ready for its all-reduce. A ScTD update (Zhong et al. 2023) runs every
layer twice, the drop pass and the full pass, before its one backward: DDP sees each parameter
ready twice and stops with "Expected to mark a variable ready only once".

The ways out, and the one taken:

- DDP's ``static_graph=True`` tolerates a parameter that is ready more than once, but only if
  the graph is the same at every iteration (torch's DistributedDataParallel docs): ScTD runs one
  pass on F-1 updates and two on every F-th, so its graph changes. fairseq has no flag for it
  either.
- One backward per pass: ScTD's KL terms compare the two passes' hidden states, so neither pass's
  loss has a backward of its own, and fairseq's ``Trainer`` runs one backward per micro-batch.
- Non-reentrant checkpointing (``torch.utils.checkpoint.checkpoint(..., use_reentrant=False)``,
  taken here, and the variant torch recommends): the layer's operations are recorded in the
  update's one autograd graph as without checkpointing; only the tensors they save are dropped,
  through saved-tensor hooks, and recomputed when the backward first needs them. Each parameter
  keeps one gradient-accumulation node that receives the sum over both passes and fires once per
  backward, so DDP sees it ready once. The graph, and so the order in which the engine sums each
  gradient's contributions, is the graph without checkpointing: the gradients are bit for bit
  those of the run without it (the reentrant wrapper adds each pass's share into ``.grad`` on
  its own, which rounds differently once ``.grad`` already holds an earlier micro-batch's).
  The recomputation replays the forward's random state (dropout) as fairseq's wrapper does.

The wrapper replaces the layer's ``forward`` on the instance, as fairseq's does (and sets the
same ``precheckpoint_forward``, so fairseq's ``unwrap_checkpoint`` undoes it): the parameters
and state-dict keys are the layer's own.
"""
import functools
from contextlib import nullcontext

import torch
from torch import nn
from torch.autograd.graph import save_on_cpu
from torch.utils.checkpoint import checkpoint


def checkpoint_layer(layer: nn.Module, offload_to_cpu: bool = False) -> nn.Module:
    """Make every later call of ``layer`` checkpointed (non-reentrant); returns ``layer``."""
    if hasattr(layer, "precheckpoint_forward"):
        raise ValueError(f"{type(layer).__name__} is already checkpointed")
    layer.precheckpoint_forward = layer.forward
    # a partial of a bound method, not a closure: copy.deepcopy (fairseq's --ema) rebinds it to the copy
    layer.forward = functools.partial(_checkpointed_forward, layer.precheckpoint_forward, offload_to_cpu)
    return layer


def _checkpointed_forward(forward, offload_to_cpu: bool, *args, **kwargs):
    if not torch.is_grad_enabled():  # validation, inference: nothing is saved, nothing to recompute
        return forward(*args, **kwargs)
    # The innermost saved-tensor hooks win: save_on_cpu sees the inputs the checkpoint keeps, not the
    # layer's own saved tensors, which the checkpoint drops. Not pinned: torch's pinned copy is laid
    # out contiguous, and a layer input with other strides (the encoder's transposed [T, B, C]) then
    # recomputes through other kernels, which torch's checkpoint refuses ("Recomputed values ...
    # have different metadata"); .cpu() keeps the strides, as fairseq's x.to("cpu") does.
    with save_on_cpu(pin_memory=False) if offload_to_cpu else nullcontext():
        return checkpoint(forward, *args, use_reentrant=False, **kwargs)
