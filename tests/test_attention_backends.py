"""The benchmark's SDPA-backend report: what the profiler shows is the backend that ran."""
import pytest
from torch.nn.attention import SDPBackend, sdpa_kernel

from fairseq_tokendrop.research.attention_backends import observed_backends

from conftest import build_tokendrop, random_tokens, tiny_dictionary


@pytest.mark.parametrize("backend,name", [(SDPBackend.MATH, "math"), (SDPBackend.FLASH_ATTENTION, "flash")])
@pytest.mark.parametrize("padded", [False, True])
def test_the_backend_forced_is_the_backend_reported_for_every_kind_of_layer(backend, name, padded):
    d = tiny_dictionary()
    model = build_tokendrop(d, token_drop=0.5)  # no dropout: CPU flash attention takes none
    tokens = random_tokens(d, 2, 12, pad_tail=(0, 8) if padded else ())  # row 1 keeps padding
    model.train()
    with sdpa_kernel([backend]):  # the only backend PyTorch may pick
        seen = observed_backends(lambda: model(tokens, features_only=True), seq_len=12)
    assert seen == {"full": [name], "cross": [name], "kept": [name]}
