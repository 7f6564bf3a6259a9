"""Matmul multiply-accumulates counted by hand, shape by shape, to hold fairseq_tokendrop.method.flops to."""


def matmul_macs(*shapes):
    """MACs of matmuls given as (rows, inner, columns)."""
    return sum(rows * inner * cols for rows, inner, cols in shapes)


def layer_by_hand(queries, keys, d, f, heads, kv_tokens=None):
    """Every matmul of one encoder layer, as fairseq's TransformerEncoderLayer and HF's BertLayer run them:
    the query projection on the queries, the key and value projections on ``kv_tokens`` (the keys; another
    count only to show a miscount), per head QK^T and the weighted sum of V, then the output projection and
    the FFN's two matmuls on the queries."""
    kv_tokens = keys if kv_tokens is None else kv_tokens
    head_dim = d // heads
    projections = matmul_macs((queries, d, d), (kv_tokens, d, d), (kv_tokens, d, d), (queries, d, d))
    attention = heads * matmul_macs((queries, head_dim, keys), (queries, keys, head_dim))
    return projections + attention + matmul_macs((queries, d, f), (queries, f, d))


def mlm_head_by_hand(masked, d, vocab):
    """fairseq's RobertaLMHead on the masked positions: the dense d -> d, then the vocabulary projection."""
    return matmul_macs((masked, d, d), (masked, d, vocab))
