"""LAMB in plain PyTorch, with the semantics of NVIDIA apex's FusedLAMB, for machines without apex.

LAMB: You et al., "Large Batch Optimization for Deep Learning: Training BERT in 76 minutes",
ICLR 2020 (arXiv:1904.00962). The details below follow apex's ``apex/optimizers/fused_lamb.py`` and
``csrc/multi_tensor_lamb.cu`` (adam_w_mode=True), which MLPerf's PyTorch BERT references train with:

1. the gradients of all groups are clipped together: where their global L2 norm N exceeds
   max_grad_norm, every gradient is divided by N / max_grad_norm;
2. Adam moments ``m = b1*m + (1-b1)*g`` (``+ g`` without grad averaging), ``v = b2*v + (1-b2)*g*g``,
   bias-corrected by ``1 - b^step`` with one step counter per parameter group;
3. the update ``u = m_hat / (sqrt(v_hat) + eps) + wd * w`` (decoupled weight decay);
4. ``w -= lr * r * u`` with the trust ratio ``r = ||w|| / ||u||`` (||w|| taken before the step),
   ``r = 1`` where either norm is 0; r applies only to groups with non-zero weight decay unless
   use_nvlamb.

The state layout is apex's (``exp_avg``, ``exp_avg_sq`` per parameter, ``step`` in the group), so a
state dict moves between this class and FusedLAMB.
"""
import math

import torch

# apex's clipping never triggers at this bound; max_grad_norm <= 0 means "no clipping" here, where
# apex would divide by a norm ratio of infinity
NO_CLIPPING = float("inf")


def math_dtype(tensor):
    """fp32 for fp16/bf16 tensors, as apex's kernels compute; fp32 and fp64 stay as they are."""
    return torch.float32 if tensor.dtype in (torch.float16, torch.bfloat16) else tensor.dtype


class Lamb(torch.optim.Optimizer):
    # fairseq's FP16Optimizer reads these: LAMB's trust ratio is per tensor, so one flat buffer
    # of all parameters would change the update; fp16/bf16 parameters are stepped in fp32 here
    supports_flat_params = False
    supports_memory_efficient_fp16 = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-6, weight_decay=0.01,
                 bias_correction=True, grad_averaging=True, max_grad_norm=1.0, use_nvlamb=False):
        if lr < 0 or eps < 0 or weight_decay < 0:
            raise ValueError(f"Lamb: lr, eps and weight_decay must be >= 0 (got {lr}, {eps}, {weight_decay})")
        if not all(0.0 <= b < 1.0 for b in betas):
            raise ValueError(f"Lamb: betas must lie in [0, 1) (got {betas})")
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                        bias_correction=bias_correction, grad_averaging=grad_averaging)
        super().__init__(params, defaults)
        self.max_grad_norm = max_grad_norm if max_grad_norm > 0 else NO_CLIPPING
        self.use_nvlamb = use_nvlamb

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        grads = [p.grad for group in self.param_groups for p in group["params"] if p.grad is not None]
        for grad in grads:
            if grad.is_sparse:
                raise RuntimeError("Lamb does not support sparse gradients")
        clip_divisor = self._clip_divisor(grads)
        for group in self.param_groups:
            # apex counts steps per group, also for a group whose parameters have no gradient
            group["step"] = group.get("step", 0) + 1
            for p in group["params"]:
                if p.grad is not None:
                    self._step_parameter(p, group, clip_divisor)
        return loss

    def _clip_divisor(self, grads) -> float:
        """N / max_grad_norm where the global gradient norm N exceeds it, else 1.

        A Python number, so that the clipping folds into the moment updates instead of costing a pass
        over every gradient: one host sync per step (fairseq's trainer syncs on the norm anyway).
        """
        if not grads:
            return 1.0
        norms = torch.stack([torch.linalg.vector_norm(g, dtype=math_dtype(g)) for g in grads])
        total = torch.linalg.vector_norm(norms).item()
        return total / self.max_grad_norm if total > self.max_grad_norm else 1.0

    def _step_parameter(self, p, group, clip_divisor):
        dtype = math_dtype(p)
        grad = p.grad.to(dtype)
        # fp16/bf16 parameters (fairseq's memory-efficient mode) are updated through an fp32 copy
        weight = p.to(dtype)
        state = self.state[p]
        if not state:
            state["exp_avg"] = torch.zeros_like(weight)
            state["exp_avg_sq"] = torch.zeros_like(weight)
        # load_state_dict casts the moments to the parameter's dtype; the arithmetic stays fp32
        exp_avg, exp_avg_sq = state["exp_avg"].to(dtype), state["exp_avg_sq"].to(dtype)

        beta1, beta2 = group["betas"]
        step = group["step"]
        # the moments of the clipped gradient g / clip_divisor
        exp_avg.mul_(beta1).add_(grad, alpha=((1 - beta1) if group["grad_averaging"] else 1.0) / clip_divisor)
        exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=(1 - beta2) / clip_divisor ** 2)
        c1, c2 = (1 - beta1 ** step, 1 - beta2 ** step) if group["bias_correction"] else (1.0, 1.0)
        # u = (m / c1) / (sqrt(v / c2) + eps), computed as m / (c1 * (sqrt(v) / sqrt(c2) + eps)) in place
        update = exp_avg_sq.sqrt().mul_(c1 / math.sqrt(c2)).add_(c1 * group["eps"])
        torch.div(exp_avg, update, out=update)
        decay = group["weight_decay"]
        if decay != 0:
            update.add_(weight, alpha=decay)

        if self.use_nvlamb or decay != 0:
            weight_norm = torch.linalg.vector_norm(weight)
            update_norm = torch.linalg.vector_norm(update)
            # "!= 0" as apex writes it: a NaN norm propagates into the step instead of being hidden;
            # the ratio stays a tensor: a Python number would cost a host sync per parameter
            trust = torch.where((weight_norm != 0) & (update_norm != 0), weight_norm / update_norm,
                                torch.ones_like(weight_norm))
            weight.addcmul_(update, trust, value=-group["lr"])
        else:
            weight.add_(update, alpha=-group["lr"])

        if weight is not p:
            p.copy_(weight)
        if state["exp_avg"] is not exp_avg:
            state["exp_avg"], state["exp_avg_sq"] = exp_avg, exp_avg_sq
