"""Load fairseq checkpoints with torch's ``weights_only`` unpickler left on.

torch >= 2.6 defaults ``torch.load`` to ``weights_only=True``; fairseq's resume
then stops at "Unsupported global: argparse.Namespace", and fairseq main
answers by passing ``weights_only=False``, which runs whatever a pickle asks
for. Instead we allowlist the few plain-data classes fairseq checkpoints
carry. Anything else is still refused by torch.
"""
import argparse

import torch

SAFE_GLOBALS = [argparse.Namespace]


def allow_fairseq_checkpoint_globals() -> None:
    torch.serialization.add_safe_globals(SAFE_GLOBALS)
