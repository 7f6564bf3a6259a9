"""``--optimizer lamb`` with or without NVIDIA apex, and MLPerf's weight-decay exclusions.

fairseq registers ``--optimizer lamb`` itself (fairseq/optim/fused_lamb.py, FairseqLAMB): it builds
apex's FusedLAMB and raises ImportError where apex is not installed. register_lamb() puts
FairseqLamb under that name instead. FairseqLamb keeps fairseq's flags and defaults
(--lamb-betas, --lamb-eps, --weight-decay), builds apex's FusedLAMB where apex and its CUDA
extensions import and the parameters are CUDA fp32/fp16 tensors, and the plain-PyTorch Lamb of
lamb.py otherwise. Both get apex's max_grad_norm (--lamb-max-grad-norm, apex's default 1.0, which
fairseq's FairseqLAMB left at that default too).

--lamb-no-decay-bias-and-norm excludes biases and LayerNorm parameters from weight decay, as the
MLPerf BERT reference does by name ("bias", "LayerNorm", "layer_norm"; mlcommons/training,
language_model/tensorflow/bert/optimization.py). fairseq hands optimizers parameters without names,
so the rule here is the shape: a parameter of at most one dimension. In BERT and fairseq's RoBERTa
these are exactly the biases and LayerNorm weights (tests/test_lamb.py checks it on both models);
fairseq calls the embedding LayerNorm "layernorm_embedding", which MLPerf's name patterns would miss.
"""
import ast
import logging
from dataclasses import dataclass, field
from typing import Any, List

import torch
from fairseq.dataclass import FairseqDataclass
from fairseq.optim import FairseqOptimizer
from omegaconf import II

from ..errors import TokendropError
from .lamb import NO_CLIPPING, Lamb

logger = logging.getLogger(__name__)


@dataclass
class LambConfig(FairseqDataclass):
    # the first three as fairseq's FairseqLAMB declares them, defaults included
    lamb_betas: Any = field(default="(0.9, 0.999)", metadata={"help": "betas for LAMB optimizer"})
    lamb_eps: float = field(default=1e-8, metadata={"help": "epsilon for LAMB optimizer"})
    weight_decay: float = field(default=0.0, metadata={"help": "weight decay"})
    lamb_no_decay_bias_and_norm: bool = field(
        default=False, metadata={"help": "no weight decay on biases and LayerNorm parameters (those of at most "
                                         "one dimension), as MLPerf's BERT reference"})
    lamb_max_grad_norm: float = field(
        default=1.0, metadata={"help": "LAMB clips the global gradient norm to this before its moments "
                                       "(apex's max_grad_norm); 0 = no clipping"})
    lr: List[float] = II("optimization.lr")


def parse_betas(value):
    """--lamb-betas as fairseq writes it on the command line ("(0.9, 0.999)") or as a list from a config."""
    try:
        betas = tuple(float(b) for b in (ast.literal_eval(value) if isinstance(value, str) else value))
    except (ValueError, TypeError, SyntaxError):
        betas = ()
    if len(betas) != 2 or not all(0.0 <= b < 1.0 for b in betas):
        raise TokendropError(f"--lamb-betas: expected two numbers in [0, 1) such as '(0.9, 0.999)', got {value!r}")
    return betas


def is_bias_or_norm(param: torch.Tensor) -> bool:
    """Biases and LayerNorm weights are the parameters of at most one dimension (see the module docstring)."""
    return param.dim() <= 1


def parameter_groups(params, exclude_bias_and_norm: bool):
    """One group of all parameters, or with the exclusion a decayed group and a weight_decay=0 group."""
    params = list(params)
    if not exclude_bias_and_norm:
        return [{"params": params}]
    decayed = [p for p in params if not is_bias_or_norm(p)]
    excluded = [p for p in params if is_bias_or_norm(p)]
    groups = [{"params": decayed}, {"params": excluded, "weight_decay": 0.0}]
    return [group for group in groups if group["params"]]


def apex_fused_lamb(params):
    """apex's FusedLAMB class where it can step these parameters, else None."""
    if not all(p.is_cuda and p.dtype in (torch.float32, torch.float16) for p in params):
        return None
    try:
        import amp_C  # noqa: F401  (FusedLAMB's CUDA kernels; without them its constructor raises)
        from apex.optimizers import FusedLAMB
    except ImportError:  # also the unrelated PyPI project named "apex"
        return None
    return FusedLAMB


class FairseqLamb(FairseqOptimizer):
    def __init__(self, cfg: LambConfig, params):
        super().__init__(cfg)
        if cfg.lamb_eps < 0 or cfg.weight_decay < 0:
            flag = "--lamb-eps" if cfg.lamb_eps < 0 else "--weight-decay"
            raise TokendropError(f"{flag}: must be >= 0")
        params = list(params)
        groups = parameter_groups(params, cfg.lamb_no_decay_bias_and_norm)
        fused = apex_fused_lamb(params)
        if fused is not None:
            config = dict(self.optimizer_config)
            # apex divides by norm / max_grad_norm whenever the norm exceeds it: 0 would zero every step
            if config["max_grad_norm"] <= 0:
                config["max_grad_norm"] = NO_CLIPPING
            self._optimizer = fused(groups, **config)
            logger.info("--optimizer lamb: NVIDIA apex FusedLAMB")
        else:
            self._optimizer = Lamb(groups, **self.optimizer_config)
            logger.info("--optimizer lamb: plain PyTorch LAMB (apex's FusedLAMB needs apex and CUDA parameters)")

    @property
    def optimizer_config(self):
        """The inner optimizer's constructor arguments (fairseq's ZeRO sharding rebuilds it from these)."""
        return {
            "lr": self.cfg.lr[0],
            "betas": parse_betas(self.cfg.lamb_betas),
            "eps": self.cfg.lamb_eps,
            "weight_decay": self.cfg.weight_decay,
            "max_grad_norm": self.cfg.lamb_max_grad_norm,
        }

    @property
    def supports_flat_params(self):
        # the trust ratio is per tensor: a flat fp32 buffer would make it one ratio for the model
        return False


def register_lamb():
    """Put FairseqLamb under ``--optimizer lamb`` in fairseq's registries (idempotent).

    fairseq's register_optimizer refuses a name that is taken, so fairseq's entry for FairseqLAMB
    is removed from OPTIMIZER_REGISTRY (and from the dataclass registry, where it has none, being a
    legacy argparse optimizer) first; register_optimizer then records LambConfig in the dataclass
    registry and as hydra's ConfigStore node optimizer/lamb, which is how --lamb-* flags reach cfg.
    """
    from fairseq.optim import OPTIMIZER_DATACLASS_REGISTRY, OPTIMIZER_REGISTRY, register_optimizer

    if OPTIMIZER_REGISTRY.get("lamb") is FairseqLamb:
        return
    OPTIMIZER_REGISTRY.pop("lamb", None)
    OPTIMIZER_DATACLASS_REGISTRY.pop("lamb", None)
    register_optimizer("lamb", dataclass=LambConfig)(FairseqLamb)
