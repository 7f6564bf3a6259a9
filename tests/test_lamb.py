"""LAMB without apex (--optimizer lamb): against a NumPy LAMB written from the paper's and apex's
formulas, against apex's FusedLAMB where apex is installed, and through stock fairseq-train."""
import copy
import importlib.util
import re
import subprocess
import sys

import numpy as np
import pytest
import torch
from fairseq import checkpoint_utils

from fairseq_tokendrop.errors import TokendropError
from fairseq_tokendrop.optim.fairseq_lamb import FairseqLamb, LambConfig, is_bias_or_norm
from fairseq_tokendrop.optim.lamb import Lamb

from conftest import REPO, build_stock_roberta, build_tokendrop, logged, tiny_dictionary, train_flags

BETAS, EPS, WD, LR, MAX_NORM = (0.9, 0.98), 1e-6, 0.05, 0.01, 1.0


def numpy_lamb(weights, groups, grad_steps, bias_correction=True, grad_averaging=True, use_nvlamb=False):
    """LAMB (You et al. 2020) as apex's FusedLAMB applies it, in float64; the weights after each step.

    groups: [(names, weight_decay)]; grad_steps: one {name: gradient or None} per step.
    """
    b1, b2 = BETAS
    w = {n: np.array(a, dtype=np.float64) for n, a in weights.items()}
    m = {n: np.zeros_like(a) for n, a in w.items()}
    v = {n: np.zeros_like(a) for n, a in w.items()}
    steps = [0] * len(groups)
    after = []
    for grads in grad_steps:
        present = {n: g for n, g in grads.items() if g is not None}
        global_norm = np.sqrt(sum(float(np.sum(g * g)) for g in present.values()))
        divisor = global_norm / MAX_NORM if global_norm > MAX_NORM else 1.0
        for i, (names, decay) in enumerate(groups):
            steps[i] += 1
            t = steps[i]
            for n in names:
                if n not in present:
                    continue
                g = present[n] / divisor
                m[n] = b1 * m[n] + ((1 - b1) if grad_averaging else 1.0) * g
                v[n] = b2 * v[n] + (1 - b2) * g * g
                c1, c2 = ((1 - b1 ** t), (1 - b2 ** t)) if bias_correction else (1.0, 1.0)
                u = (m[n] / c1) / (np.sqrt(v[n] / c2) + EPS) + decay * w[n]
                ratio = 1.0
                if use_nvlamb or decay != 0:
                    w_norm, u_norm = np.linalg.norm(w[n]), np.linalg.norm(u)
                    if w_norm > 0 and u_norm > 0:
                        ratio = w_norm / u_norm
                w[n] = w[n] - LR * ratio * u
        after.append({n: a.copy() for n, a in w.items()})
    return after


class TinyModel(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.proj = torch.nn.Linear(5, 4)
        self.norm = torch.nn.LayerNorm(4)
        self.out = torch.nn.Linear(4, 3)
        self.starts_at_zero = torch.nn.Parameter(torch.zeros(3, 2))  # ||w|| = 0: trust ratio 1


def gradient_steps(model, rng):
    """Six steps of gradients; global norms around MAX_NORM so clipping triggers in some, not others."""
    steps = []
    for size, missing in [(3.0, None), (0.2, None), (5.0, "norm.bias"), (0.5, None), (2.0, None), (0.05, None)]:
        grads = {n: rng.standard_normal(p.shape) for n, p in model.named_parameters()}
        norm = np.sqrt(sum(float(np.sum(g * g)) for g in grads.values()))
        grads = {n: g * size / norm for n, g in grads.items()}
        if missing:  # no gradient this step: apex skips the tensor but counts the group's step
            grads[missing] = None
        steps.append(grads)
    # a zero first gradient: a zero update on a non-zero weight, trust ratio 1 (use_nvlamb), not w/0
    steps[0]["out.bias"] = np.zeros(model.out.bias.shape)
    return steps


def two_groups(model):
    decayed = [n for n, p in model.named_parameters() if p.dim() > 1]
    excluded = [n for n, p in model.named_parameters() if p.dim() <= 1]
    return [(decayed, WD), (excluded, 0.0)]


def run_lamb(model, groups, grad_steps, device, dtype, **options):
    model = model.to(device=device, dtype=dtype)
    params = dict(model.named_parameters())
    opt = Lamb([{"params": [params[n] for n in names], "weight_decay": decay} for names, decay in groups],
               lr=LR, betas=BETAS, eps=EPS, max_grad_norm=MAX_NORM, **options)
    after = []
    for grads in grad_steps:
        for n, p in params.items():
            p.grad = None if grads[n] is None else torch.tensor(grads[n], device=device, dtype=dtype)
        opt.step()
        after.append({n: p.detach().cpu().double().numpy().copy() for n, p in params.items()})
    return after


@pytest.mark.parametrize("options", [
    {},
    {"grad_averaging": False, "bias_correction": False, "use_nvlamb": True},
], ids=["apex-defaults", "no-averaging-no-correction-nvlamb"])
@pytest.mark.parametrize("device,dtype,tol", [
    ("cpu", torch.float64, 1e-12),
    pytest.param("cuda", torch.float32, 2e-6, marks=pytest.mark.skipif(
        not torch.cuda.is_available(), reason="no CUDA device")),
])
def test_six_steps_match_a_numpy_lamb(options, device, dtype, tol):
    torch.manual_seed(0)
    model = TinyModel()
    groups = two_groups(model)
    grad_steps = gradient_steps(model, np.random.default_rng(1))
    # the data covers what it should: clipping on some steps and not others, a zero-norm weight
    norms = [np.sqrt(sum(float(np.sum(g * g)) for g in s.values() if g is not None)) for s in grad_steps]
    assert any(n > MAX_NORM for n in norms) and any(n < MAX_NORM for n in norms)
    start = {n: p.detach().double().numpy().copy() for n, p in model.named_parameters()}
    assert not start["starts_at_zero"].any()

    expected = numpy_lamb(start, groups, grad_steps, **options)
    got = run_lamb(model, groups, grad_steps, device, dtype, **options)
    for step, (want, have) in enumerate(zip(expected, got)):
        for n in want:
            np.testing.assert_allclose(have[n], want[n], rtol=tol, atol=tol, err_msg=f"step {step + 1}, {n}")
    moved = {n: np.abs(expected[-1][n] - start[n]).max() for n in start}
    assert min(moved.values()) > 1e-4, moved  # every tensor, the zero one too, took real steps


def test_bf16_parameters_step_in_fp32_and_round_once():
    """fairseq's --memory-efficient-bf16 hands the optimizer bf16 parameters: each step must be the fp32
    step from the same values, rounded, with fp32 moments."""
    torch.manual_seed(0)
    half = torch.nn.Parameter(torch.randn(6, 5).bfloat16())
    full = torch.nn.Parameter(half.detach().float())
    opt_half = Lamb([half], lr=LR, betas=BETAS, eps=EPS, weight_decay=WD)
    opt_full = Lamb([full], lr=LR, betas=BETAS, eps=EPS, weight_decay=WD)
    for step in range(3):
        grad = torch.randn(6, 5)
        half.grad, full.grad = grad.bfloat16(), grad.bfloat16().float()
        opt_half.step()
        opt_full.step()
        assert torch.equal(half.detach(), full.detach().bfloat16()), step
        assert opt_half.state[half]["exp_avg_sq"].dtype == torch.float32
        assert torch.equal(opt_half.state[half]["exp_avg"], opt_full.state[full]["exp_avg"])
        with torch.no_grad():
            full.copy_(half.float())  # both continue from the rounded weights


def apex_available():
    return (torch.cuda.is_available() and importlib.util.find_spec("apex") is not None
            and importlib.util.find_spec("amp_C") is not None)


@pytest.mark.skipif(not apex_available(), reason="NVIDIA apex with its CUDA extensions is not installed")
def test_six_steps_match_apex_fused_lamb():
    from apex.optimizers import FusedLAMB

    torch.manual_seed(0)
    model = TinyModel()
    groups = two_groups(model)
    grad_steps = gradient_steps(model, np.random.default_rng(1))
    ours = run_lamb(copy.deepcopy(model), groups, grad_steps, "cuda", torch.float32)

    apex_model = model.cuda()
    params = dict(apex_model.named_parameters())
    opt = FusedLAMB([{"params": [params[n] for n in names], "weight_decay": d} for names, d in groups],
                    lr=LR, betas=BETAS, eps=EPS, max_grad_norm=MAX_NORM)
    for step, grads in enumerate(grad_steps):
        for n, p in params.items():
            p.grad = None if grads[n] is None else torch.tensor(grads[n], device="cuda", dtype=torch.float32)
        opt.step()
        for n, p in params.items():
            np.testing.assert_allclose(p.detach().cpu().double().numpy(), ours[step][n], rtol=1e-5, atol=1e-6,
                                       err_msg=f"step {step + 1}, {n}")


BIAS_OR_NORM_NAME = re.compile(r"bias|layer_?norm", re.IGNORECASE)  # MLPerf's "bias", "LayerNorm", "layer_norm"


@pytest.mark.parametrize("build", [lambda: build_stock_roberta(tiny_dictionary()), build_tokendrop],
                         ids=["roberta", "tokendrop_roberta"])
def test_the_one_dimension_rule_picks_exactly_the_biases_and_layer_norms(build):
    named = list(build().named_parameters())
    by_shape = {n for n, p in named if is_bias_or_norm(p)}
    by_name = {n for n, _ in named if BIAS_OR_NORM_NAME.search(n)}
    assert by_shape == by_name
    assert any("layernorm_embedding" in n for n in by_shape)  # a name MLPerf's patterns would miss


def test_bad_betas_are_one_line_naming_the_flag():
    with pytest.raises(TokendropError, match="--lamb-betas"):
        FairseqLamb(LambConfig(lamb_betas="(0.9,)", lr=[1e-3]), [torch.nn.Parameter(torch.ones(2))])


TRAIN_LR, WARMUP, WARMUP_START, TOTAL, TRAIN_MAX_NORM = 5e-3, 3, -1, 8, 1.6


def fairseq_train(data_bin, save_dir, updates):
    flags = train_flags(
        data_bin, save_dir, "--max-update", updates, "--disable-validation", "--save-interval-updates", "1",
        "--optimizer", "lamb", "--lamb-betas", str(BETAS), "--lamb-eps", "1e-6", "--weight-decay", str(WD),
        "--lamb-no-decay-bias-and-norm", "--lamb-max-grad-norm", str(TRAIN_MAX_NORM), "--lr", str(TRAIN_LR),
        "--lr-scheduler", "mlperf_polynomial", "--warmup-updates", str(WARMUP),
        "--warmup-start-update", str(WARMUP_START), "--total-num-update", str(TOTAL))
    # stock fairseq-train --user-dir fairseq_tokendrop, as a user runs it
    proc = subprocess.run([sys.executable, "-m", "fairseq_cli.train", *map(str, flags)], cwd=REPO,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # one stream
    assert proc.returncode == 0, proc.stdout[-5000:]
    return proc


def hand_lr(t):
    """MLPerf's schedule written out for these flags: the ramp starts at update -1, 3 updates long."""
    return TRAIN_LR * (t + 1) / 3 if t + 1 < 3 else TRAIN_LR * (1 - min(t, 8) / 8)


@pytest.fixture(scope="module")
def four_updates(data_bin, tmp_path_factory):
    save_dir = tmp_path_factory.mktemp("lamb4")
    return fairseq_train(data_bin, save_dir, 4), save_dir


@pytest.mark.slow  # starts fairseq-train
def test_fairseq_train_runs_lamb_without_apex_and_logs_mlperfs_learning_rate(four_updates):
    proc, _ = four_updates
    assert "plain PyTorch LAMB" in proc.stdout
    records = logged(proc.stdout)
    assert [int(r["num_updates"]) for r in records] == [1, 2, 3, 4]
    assert all(np.isfinite(float(r["loss"])) for r in records)
    for r in records:  # the rate set after update t, for update t + 1 (logged to 6 digits)
        assert float(r["lr"]) == pytest.approx(hand_lr(int(r["num_updates"])), rel=1e-5)


def load_state(path):
    state = torch.load(path, weights_only=True)
    return state["model"], state["last_optimizer_state"]


@pytest.mark.slow  # starts fairseq-train
def test_each_fairseq_train_update_is_lamb_applied_to_the_clipped_gradient(four_updates):
    """Consecutive checkpoints determine each update: the clipped gradient follows from the first moments,
    so the second moments, the clipping (against fairseq's logged gnorm) and the weights can be checked."""
    proc, save_dir = four_updates
    gnorm = {int(r["num_updates"]): float(r["gnorm"]) for r in logged(proc.stdout)}
    assert any(g > TRAIN_MAX_NORM for g in gnorm.values()) and any(g < TRAIN_MAX_NORM for g in gnorm.values()), gnorm
    b1, b2 = BETAS
    models, _, _ = checkpoint_utils.load_model_ensemble_and_task([str(save_dir / "checkpoint_1_1.pt")])
    names = [n for n, _ in models[0].named_parameters()]  # fairseq's optimizer order (ties counted once)
    # the groups: decayed, then biases and LayerNorms
    decayed = [n for n in names if not BIAS_OR_NORM_NAME.search(n)]
    excluded = [n for n in names if BIAS_OR_NORM_NAME.search(n)]

    previous = None
    for k in range(1, 5):
        weights, opt = load_state(save_dir / f"checkpoint_1_{k}.pt")
        group_decay = [g["weight_decay"] for g in opt["param_groups"]]
        assert group_decay == [WD, 0.0] and [g["step"] for g in opt["param_groups"]] == [k, k]
        assert opt["param_groups"][0]["lr"] == pytest.approx(hand_lr(k), rel=1e-12)
        index = {n: i for i, n in enumerate(decayed + excluded)}
        assert sorted(opt["state"]) == list(range(len(index)))  # the name rule found every parameter
        m = {n: opt["state"][index[n]]["exp_avg"].double() for n in index}
        v = {n: opt["state"][index[n]]["exp_avg_sq"].double() for n in index}
        w = {n: weights[n].double() for n in index}
        m0 = previous["m"] if previous else {n: torch.zeros_like(a) for n, a in m.items()}
        v0 = previous["v"] if previous else {n: torch.zeros_like(a) for n, a in v.items()}
        grad = {n: (m[n] - b1 * m0[n]) / (1 - b1) for n in index}
        clipped_norm = torch.sqrt(sum((g * g).sum() for g in grad.values())).item()
        assert clipped_norm == pytest.approx(min(gnorm[k], TRAIN_MAX_NORM), abs=1e-3), k
        for n in index:
            torch.testing.assert_close(v[n], b2 * v0[n] + (1 - b2) * grad[n] ** 2, rtol=1e-4, atol=1e-12)
        if previous:
            for n in index:
                decay = WD if n in decayed else 0.0
                w0 = previous["w"][n]
                u = (m[n] / (1 - b1 ** k)) / (torch.sqrt(v[n] / (1 - b2 ** k)) + 1e-6) + decay * w0
                ratio = (w0.norm() / u.norm()).item() if decay and w0.norm() > 0 and u.norm() > 0 else 1.0
                torch.testing.assert_close(w0 - w[n], previous["lr"] * ratio * u, rtol=1e-4, atol=1e-7,
                                           msg=f"update {k}, {n}")
        previous = {"m": m, "v": v, "w": w, "lr": opt["param_groups"][0]["lr"]}


@pytest.mark.slow  # starts fairseq-train
def test_resumed_training_continues_the_lamb_state_exactly(data_bin, tmp_path, four_updates):
    _, straight = four_updates
    fairseq_train(data_bin, tmp_path, 2)
    resumed = fairseq_train(data_bin, tmp_path, 4)
    assert [int(r["num_updates"]) for r in logged(resumed.stdout)] == [3, 4]
    a_model, a_opt = load_state(straight / "checkpoint_last.pt")
    b_model, b_opt = load_state(tmp_path / "checkpoint_last.pt")
    for name in a_model:
        assert torch.equal(a_model[name], b_model[name]), name
    assert a_opt["param_groups"] == b_opt["param_groups"]
    for i, slots in a_opt["state"].items():
        for slot in ("exp_avg", "exp_avg_sq"):
            assert torch.equal(slots[slot], b_opt["state"][i][slot]), (i, slot)
