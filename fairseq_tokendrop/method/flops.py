"""Ideal compute of one training forward: matmul multiply-accumulates (MACs).

Counts what dominates a transformer's cost and nothing else (no embeddings,
layer norms, softmax, dropout, gather/scatter, optimizer), per sequence:

    one layer, Q queries attending over S keys/values (width d, FFN width f):
        Q*d^2            query projection
        2*S*d^2          key and value projections
        Q*d^2            output projection
        2*Q*d*f          FFN (two matmuls)
        2*Q*S*d          attention: scores QK^T and the weighted sum of V

    full layer      Q = S = T   ->  T*(4d^2 + 2df + 2Td)
    cross layer     Q = K, S = T (layer N//2-1: kept queries over all tokens)
    kept layer      Q = S = K
    MLM head        M*(d^2 + d*V): dense d->d, then the vocabulary projection,
                    on the M masked positions only (fairseq's RobertaLMHead)

Layout for N layers (Hou et al., ACL 2022; TF Model Garden
``official/projects/token_dropping/encoder.py``; ScTD, Zhong et al. 2023):
full layers [0, N//2-1), the cross layer N//2-1, kept layers [N//2, N-1),
full layer N-1.

A training step is about 3 forwards (the backward costs twice the forward,
matmul for matmul), so the ratio of two steps equals the ratio of their
forwards. BERT-base (d 768, f 3072, N 12), T 512, K 256 gives 0.7458 for the
encoder and 0.7607 with the head on 77 masked tokens and a 50,000-word
vocabulary, in line with the 25% saving of Hou et al. (ACL 2022).

ScTD runs, every F-th update, the same batch through the full model as well,
so per update it costs on average (F-1)/F * drop + 1/F * (drop + full)
= drop + full/F.
"""
from typing import Optional


def layer_macs(queries: int, keys: int, dim: int, ffn: int) -> int:
    """One encoder layer with ``queries`` query tokens over ``keys`` key/value tokens."""
    projections = 2 * queries * dim * dim + 2 * keys * dim * dim  # Q, O on queries; K, V on keys
    feed_forward = 2 * queries * dim * ffn
    attention = 2 * queries * keys * dim
    return projections + feed_forward + attention


def encoder_macs(layers: int, dim: int, ffn: int, seq_len: int, kept: Optional[int] = None) -> int:
    """The encoder on one sequence of ``seq_len`` tokens; ``kept`` None or >= T = no dropping."""
    full = layer_macs(seq_len, seq_len, dim, ffn)
    if kept is None or kept >= seq_len:
        return layers * full
    split = layers // 2 - 1
    cross = layer_macs(kept, seq_len, dim, ffn)
    middle = layer_macs(kept, kept, dim, ffn)
    return (split + 1) * full + cross + (layers - 1 - (split + 1)) * middle


def mlm_head_macs(masked: int, dim: int, vocab: int) -> int:
    """fairseq's RobertaLMHead on ``masked`` positions of one sequence."""
    return masked * (dim * dim + dim * vocab)


def forward_macs(layers: int, dim: int, ffn: int, seq_len: int, kept: Optional[int] = None,
                 masked: int = 0, vocab: int = 0) -> int:
    """Encoder plus MLM head, one sequence, one forward."""
    return encoder_macs(layers, dim, ffn, seq_len, kept) + mlm_head_macs(masked, dim, vocab)


def ideal_ratio(layers: int, dim: int, ffn: int, seq_len: int, kept: int,
                masked: int = 0, vocab: int = 0) -> float:
    """Token-dropping forward / full forward (``masked=0``: the encoder alone)."""
    drop = forward_macs(layers, dim, ffn, seq_len, kept, masked, vocab)
    full = forward_macs(layers, dim, ffn, seq_len, None, masked, vocab)
    return drop / full


def sctd_ideal_ratio(drop_ratio: float, interval: int) -> float:
    """ScTD's average cost per update relative to a full update: drop + full/F.

    ``interval`` 0 means no ScTD (plain token dropping).
    """
    return drop_ratio + (1.0 / interval if interval > 0 else 0.0)


# The backward pass costs two forwards, matmul for matmul (input and weight gradients).
BACKWARD_FACTOR = 2


def training_update_macs(layers: int, dim: int, ffn: int, vocab: int, batch: int, seq_len: int,
                         kept: Optional[int], masked: int, full_pass: bool = False) -> int:
    """Forward plus backward of one training batch: ``batch`` padded rows of ``seq_len``,
    ``kept`` of them per row through the middle layers (None = all), ``masked``
    MLM targets in the whole batch; ``full_pass`` adds ScTD's pass of the full model."""
    forward = batch * encoder_macs(layers, dim, ffn, seq_len, kept) + mlm_head_macs(masked, dim, vocab)
    if full_pass:
        forward += batch * encoder_macs(layers, dim, ffn, seq_len) + mlm_head_macs(masked, dim, vocab)
    return (1 + BACKWARD_FACTOR) * forward


def equal_compute_updates(base_updates: int, ratio: float) -> int:
    """Updates of a mode costing ``ratio`` of a baseline update that spend the
    compute of ``base_updates`` baseline updates (rounded to the nearest update)."""
    return round(base_updates / ratio)
