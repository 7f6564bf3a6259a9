"""Which scaled-dot-product-attention backend each kind of layer really ran, read off the profiler.

``F.scaled_dot_product_attention`` dispatches each call to one ATen op per
backend (flash, memory-efficient, cuDNN, math), chosen at run time from the
device, dtype, shapes, mask and dropout. The profiler records the op that
ran, under a label this module puts around every call, so nothing is
inferred: fairseq's ``MultiheadAttention`` reaches SDPA through
``F.multi_head_attention_forward``, the cross-attention layer directly, and
both pass through the same recording wrapper (which calls the real function).

Kinds, from the call's shapes (T the padded length): ``full`` (T queries, T
keys: the full-length layers and every stock layer), ``cross`` (fewer queries
than keys: the cross-attention layer), ``kept`` (the same number of queries
and keys, fewer than T: the kept-token layers).
"""
from collections import defaultdict
from contextlib import contextmanager
from typing import Callable, Dict, List

import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile, record_function

LABEL = "tokendrop_sdpa:"
KINDS = ("full", "cross", "kept")  # in layer order
BACKEND_OPS = {
    "aten::_scaled_dot_product_flash_attention": "flash",
    "aten::_scaled_dot_product_flash_attention_for_cpu": "flash",
    "aten::_scaled_dot_product_efficient_attention": "memory-efficient",
    "aten::_scaled_dot_product_cudnn_attention": "cudnn",
    "aten::_scaled_dot_product_attention_math": "math",
    "aten::_scaled_dot_product_fused_attention_overrideable": "overrideable",
}


def layer_kind(query_len: int, key_len: int, seq_len: int) -> str:
    if query_len < key_len:
        return "cross"
    return "full" if query_len == seq_len else "kept"


@contextmanager
def _labelled_sdpa(seq_len: int):
    real = F.scaled_dot_product_attention

    def labelled(query, key, *args, **kwargs):
        with record_function(LABEL + layer_kind(query.size(-2), key.size(-2), seq_len)):
            return real(query, key, *args, **kwargs)

    F.scaled_dot_product_attention = labelled
    try:
        yield
    finally:
        F.scaled_dot_product_attention = real


def _backend_below(event) -> str:
    for child in event.cpu_children:
        if child.name in BACKEND_OPS:
            return BACKEND_OPS[child.name]
        found = _backend_below(child)
        if found:
            return found
    return ""


def observed_backends(run: Callable[[], None], seq_len: int) -> Dict[str, List[str]]:
    """Run ``run()`` once under the profiler; ``{kind: sorted backends its forward calls used}``.

    A kind whose calls went through none of the known ops reports ``unknown``.
    """
    activities = [ProfilerActivity.CPU]  # ATen ops are recorded on the host, also for CUDA tensors
    with _labelled_sdpa(seq_len), profile(activities=activities) as prof:
        run()
    seen = defaultdict(set)
    for event in prof.events():
        if event.name.startswith(LABEL):
            seen[event.name[len(LABEL):]].add(_backend_below(event) or "unknown")
    return {kind: sorted(seen[kind]) for kind in KINDS if kind in seen}


def describe(backends: Dict[str, List[str]]) -> str:
    """``full=flash cross=flash kept=flash``."""
    return " ".join(f"{kind}={'+'.join(b)}" for kind, b in backends.items())
