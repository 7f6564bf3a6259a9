"""Which tokens of each sentence the dropping layers keep, asked of the model itself.

The model built from a checkpoint is set to that checkpoint's update and asked for the plan a
training forward would run (``TokenDropRobertaEncoder.plan``: the kept length of the flags or the
schedule at that update, then the strategy's own selection, ``method/strategies.py``): importance
by the stored scores and the pins, random and random-LTD by the noise of ``--seed``. Nothing runs
through the layers and nothing is selected here.

Each sentence is a batch of its own, so its padded length is its length; for the random
strategies, sentence i is micro-batch i of the update on rank 0 of 1 (``method/noise.py``), the
draw a one-process run makes for its i-th micro-batch of that update.
"""
from dataclasses import dataclass
from typing import List, Sequence

import numpy as np
import torch

from ..method.layer_plans import LayerwisePlan


@dataclass
class SentenceMarks:
    ids: List[int]
    kept_length: int  # tokens each dropping layer sees (the sentence's length when nothing is dropped)
    kept: np.ndarray  # [rows, T] bool: per row of ``row_labels``, True where that layer sees the token


def row_labels(encoder) -> List[str]:
    """The layers each row of marks stands for (layer ids from 0, as ``--random-ltd-layers`` counts)."""
    if getattr(encoder, "strategy", None) is None:  # no dropping, or a stock RoBERTa
        return ["every layer"]
    if encoder.layerwise_layers is not None:
        return [f"layer {layer}" for layer in encoder.layerwise_layers]
    layers = len(encoder.sentence_encoder.layers)
    return [f"layers {layers // 2 - 1}-{layers - 2}"]  # the token-dropping layout (method/layer_plans.py)


@torch.no_grad()
def sentence_marks(encoder, sentences: Sequence[Sequence[int]], num_updates: int) -> List[SentenceMarks]:
    """The marks of every sentence (each ``<s> ... </s>`` ids) at update ``num_updates``."""
    rows = len(row_labels(encoder))
    encoder.set_num_updates(num_updates)
    was_training = encoder.training
    encoder.train()  # the plan is a training forward's; no layer runs, so dropout does nothing here
    try:
        marks = []
        for ids in sentences:
            tokens = torch.tensor([list(ids)], dtype=torch.long)
            plan = encoder.plan(tokens) if hasattr(encoder, "plan") else None
            kept = np.zeros((rows, len(ids)), dtype=bool)
            if plan is None:
                kept[:] = True
            else:
                index = plan.index if isinstance(plan, LayerwisePlan) else plan.index.unsqueeze(0)  # [rows, 1, K]
                for row, positions in enumerate(index[:, 0].numpy()):
                    kept[row, positions] = True
            marks.append(SentenceMarks(list(ids), int(kept[0].sum()), kept))
        return marks
    finally:
        encoder.train(was_training)
