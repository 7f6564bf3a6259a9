"""research/attention_backends.py on the plugin's layers: every SDPA call is filed under the kind of layer
that made it, with the backend the profiler saw run beneath it.

The kinds follow the layouts: token dropping has full layers, one cross layer (kept queries over all
tokens) and kept layers; random-LTD's wrapped layers run on their kept tokens alone, so it has full and
kept layers and no cross layer. Each model runs under one forced backend, so what each kind reports is
known from the layout alone.
"""
import pytest
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

from fairseq_tokendrop.research.attention_backends import describe, observed_backends

from conftest import build_tokendrop, random_tokens, tiny_dictionary


def test_each_kind_of_layer_reports_the_backends_its_calls_ran():
    d = tiny_dictionary()
    dropping = build_tokendrop(d, token_drop=0.5).train()
    layerwise = build_tokendrop(d, token_drop=0.5, token_drop_strategy="random-ltd").train()
    tokens = random_tokens(d, 2, 12, pad_tail=(0, 8))  # row 1 keeps padding: the masked calls too

    def run():
        with sdpa_kernel([SDPBackend.MATH]):
            dropping(tokens, features_only=True)
        with sdpa_kernel([SDPBackend.FLASH_ATTENTION]):  # no dropout: CPU flash attention takes none
            layerwise(tokens, features_only=True)

    seen = observed_backends(run, seq_len=12)
    assert seen == {"full": ["flash", "math"], "cross": ["math"], "kept": ["flash", "math"]}
    assert describe(seen) == "full=flash+math cross=math kept=flash+math"


def test_the_real_attention_function_is_back_after_a_run_that_fails():
    real = F.scaled_dot_product_attention
    model = build_tokendrop(token_drop=0.5).train()

    def fails():
        model(random_tokens(tiny_dictionary(), 2, 12), features_only=True)
        raise RuntimeError("the step failed")

    with pytest.raises(RuntimeError, match="the step failed"):
        observed_backends(fails, seq_len=12)
    assert F.scaled_dot_product_attention is real
