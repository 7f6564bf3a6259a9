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

Each group is stepped with multi-tensor ops (``torch._foreach_*``) and no host read: the clipping
factor and the trust ratios stay on the device, as in apex's kernels.

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
        groups = [(group, [p for p in group["params"] if p.grad is not None]) for group in self.param_groups]
        if any(p.grad.is_sparse for _, params in groups for p in params):
            raise RuntimeError("Lamb does not support sparse gradients")
        # fp16/bf16 parameters (fairseq's memory-efficient modes) and their gradients are stepped through
        # fp32 copies of a whole group at once; fp32 and fp64 ones in place
        grads = [[p.grad.to(math_dtype(p.grad)) for p in params] for _, params in groups]
        clip_scale = self._clip_scale([g for group_grads in grads for g in group_grads])
        for (group, params), group_grads in zip(groups, grads):
            # apex counts steps per group, also for a group whose parameters have no gradient
            group["step"] = group.get("step", 0) + 1
            if params:
                self._step_group(group, params, group_grads, clip_scale)
        return loss

    def _clip_scale(self, grads):
        """1 / (N / max_grad_norm) where the global gradient norm N exceeds max_grad_norm, else 1: a 0-dim
        tensor on the gradients' device, so that no step waits for the host to read N (apex's FusedLAMB
        keeps it on the device too)."""
        if not grads:
            return None
        total = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))
        return torch.where(total > self.max_grad_norm, self.max_grad_norm / total, torch.ones_like(total))

    def _step_group(self, group, params, grads, clip_scale):
        weights = [p.to(math_dtype(p)) for p in params]
        states = [self.state[p] for p in params]
        for state, weight in zip(states, weights):
            if not state:
                state["exp_avg"] = torch.zeros_like(weight)
                state["exp_avg_sq"] = torch.zeros_like(weight)
        # load_state_dict casts the moments to the parameter's dtype; the arithmetic stays fp32
        exp_avgs = [state["exp_avg"].to(weight.dtype) for state, weight in zip(states, weights)]
        exp_avg_sqs = [state["exp_avg_sq"].to(weight.dtype) for state, weight in zip(states, weights)]

        beta1, beta2 = group["betas"]
        step = group["step"]
        clipped = torch._foreach_mul(grads, clip_scale)
        torch._foreach_mul_(exp_avgs, beta1)
        torch._foreach_add_(exp_avgs, clipped, alpha=(1 - beta1) if group["grad_averaging"] else 1.0)
        torch._foreach_mul_(exp_avg_sqs, beta2)
        torch._foreach_addcmul_(exp_avg_sqs, clipped, clipped, value=1 - beta2)
        del clipped
        c1, c2 = (1 - beta1 ** step, 1 - beta2 ** step) if group["bias_correction"] else (1.0, 1.0)
        # u = (m / c1) / (sqrt(v / c2) + eps), computed as m / (c1 * (sqrt(v) / sqrt(c2) + eps))
        denominators = torch._foreach_sqrt(exp_avg_sqs)
        torch._foreach_mul_(denominators, c1 / math.sqrt(c2))
        torch._foreach_add_(denominators, c1 * group["eps"])
        updates = torch._foreach_div(exp_avgs, denominators)
        del denominators
        decay = group["weight_decay"]
        if decay != 0:
            torch._foreach_add_(updates, weights, alpha=decay)

        if self.use_nvlamb or decay != 0:
            norms = torch._foreach_norm([*weights, *updates])  # one call for the group's weights and updates
            weight_norms, update_norms = torch.stack(norms[:len(weights)]), torch.stack(norms[len(weights):])
            # "!= 0" as apex writes it: a NaN norm propagates into the step instead of being hidden;
            # the ratios stay on the device: Python numbers would cost a host read per parameter
            trust = torch.where((weight_norms != 0) & (update_norms != 0), weight_norms / update_norms,
                                torch.ones_like(weight_norms))
            torch._foreach_addcmul_(weights, updates, list(trust.unbind()), value=-group["lr"])
        else:
            torch._foreach_add_(weights, updates, alpha=-group["lr"])

        copies = [(p, weight) for p, weight in zip(params, weights) if weight is not p]
        if copies:
            torch._foreach_copy_([p for p, _ in copies], [weight for _, weight in copies])
        for state, exp_avg, exp_avg_sq in zip(states, exp_avgs, exp_avg_sqs):
            if state["exp_avg"] is not exp_avg:
                state["exp_avg"], state["exp_avg_sq"] = exp_avg, exp_avg_sq
