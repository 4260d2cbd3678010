"""levelup.train.optim: AveragedAdamW, which calls torch's kernels directly, gives bit for bit
what torch's ``AdamW.step()`` and ``SGD.step()`` give (through rate changes and a state reload,
fused and "foreach"); Plateau lowers the rates as torch's ReduceLROnPlateau does; neither
imports torch._dynamo."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest
import torch

from levelup.train.optim import AveragedAdamW, Plateau


def _params(seed: int) -> list[torch.nn.Parameter]:
    g = torch.Generator().manual_seed(seed)
    shapes = [(6, 5), (6,), (3, 6), (3,), (1, 3)]
    return [torch.nn.Parameter(torch.randn(s, generator=g)) for s in shapes]


def _grads(params: list[torch.Tensor], step: int) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(1000 + step)
    return [torch.randn(p.shape, generator=g) for p in params]


def test_kernel_step_equals_torch_step_bit_for_bit():
    mine = _params(0)
    ref = [torch.nn.Parameter(p.detach().clone()) for p in mine]
    opt = AveragedAdamW([(mine[0:1] + mine[4:5], 1e-2, 1e-2), (mine[2:3], 1e-2, 1e-5),
                         (mine[1:2] + mine[3:4], 3e-3, 0.0, "sgd")])
    adamw = torch.optim.AdamW([{"params": ref[0:1] + ref[4:5], "weight_decay": 1e-2},
                               {"params": ref[2:3], "weight_decay": 1e-5}], lr=1e-2, fused=True)
    sgd = torch.optim.SGD(ref[1:2] + ref[3:4], lr=3e-3)
    for step in range(40):
        if step == 25:  # a schedule halving every rate
            opt.set_scale(0.5)
            for o in (adamw, sgd):
                for group in o.param_groups:
                    group["lr"] *= 0.5
        if step == 30:  # resume from a saved state: torch replaces the state tensors
            saved = opt.state_dict()
            opt.load_state_dict(saved)
        for p, g in zip(mine, _grads(mine, step), strict=True):
            p.grad.copy_(g)
        for p, g in zip(ref, _grads(ref, step), strict=True):
            p.grad = g
        opt.step()
        adamw.step()
        sgd.step()
        for a, b in zip(mine, ref, strict=True):
            assert torch.equal(a.detach(), b.detach()), f"step {step} differs"
    assert opt.steps == 40


def test_kernel_step_follows_a_replaced_gradient_buffer():
    """Autograd may replace a ``.grad`` tensor instead of accumulating into it: the step then
    reads the new one."""
    (p,) = [torch.nn.Parameter(torch.ones(3))]
    ref = torch.nn.Parameter(torch.ones(3))
    opt = AveragedAdamW([([p], 0.1, 0.0)])
    torch_opt = torch.optim.AdamW([ref], lr=0.1, weight_decay=0.0, fused=True)
    for step in range(4):
        g = torch.full((3,), float(step + 1))
        p.grad = g.clone()  # a new buffer every step
        ref.grad = g.clone()
        opt.step()
        torch_opt.step()
        assert torch.equal(p.detach(), ref.detach())


def test_foreach_fallback_equals_torch_foreach_adamw_bit_for_bit():
    mine = _params(1)
    ref = [torch.nn.Parameter(p.detach().clone()) for p in mine]
    opt = AveragedAdamW([(mine, 1e-2, 1e-2)], fused=False)
    assert not opt.fused
    torch_opt = torch.optim.AdamW(ref, lr=1e-2, weight_decay=1e-2, foreach=True)
    for step in range(20):
        for p, g in zip(mine, _grads(mine, step), strict=True):
            p.grad.copy_(g)
        for p, g in zip(ref, _grads(ref, step), strict=True):
            p.grad = g
        opt.step()
        torch_opt.step()
    for a, b in zip(mine, ref, strict=True):
        assert torch.equal(a.detach(), b.detach())


@pytest.mark.parametrize("factor,threshold", [(0.5, 0.0), (0.3, 1e-2)])
def test_plateau_follows_torchs_reduce_lr_on_plateau(factor, threshold):
    """The same rates as torch's ReduceLROnPlateau (mode min, relative threshold, no cool-down)
    on a loss sequence with plateaus, near-improvements and a NaN; state round trip."""
    p, q = torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(1))
    opt = AveragedAdamW([([p], 1e-3, 0.0), ([q], 4e-3, 0.0)])
    mine = Plateau(opt, factor=factor, patience=3, threshold=threshold)
    r = torch.nn.Parameter(torch.zeros(1))
    torch_opt = torch.optim.SGD([{"params": [r], "lr": 1e-3}, {"params": [], "lr": 4e-3}])
    ref = torch.optim.lr_scheduler.ReduceLROnPlateau(
        torch_opt, mode="min", factor=factor, patience=3, threshold=threshold,
        threshold_mode="rel", cooldown=0, min_lr=0.0, eps=0.0)
    g = torch.Generator().manual_seed(0)
    losses = (1.0 / torch.arange(1, 61) + 0.02 * torch.rand(60, generator=g)).tolist()
    losses[10:25] = [losses[9] * (1 - threshold / 2)] * 15  # inside the threshold: no better
    losses[40] = math.nan
    for k, loss in enumerate(losses):
        if k == 30:
            again = Plateau(opt, factor=factor, patience=3, threshold=threshold)
            again.load_state_dict(mine.state_dict())
            mine = again
        mine.step(loss)
        ref.step(loss)
        assert [g["lr"] for g in opt.param_groups] == [g["lr"] for g in torch_opt.param_groups]
        assert mine.num_bad_epochs == ref.num_bad_epochs and mine.best == ref.best
    assert opt.param_groups[0]["lr"] < 1e-3 * factor ** 3  # the schedule did act


def test_training_imports_no_torch_dynamo():
    """torch.optim's optimizers import torch._dynamo when built (about 1.5 s per process);
    AveragedAdamW and Plateau do not."""
    code = ("import sys, torch\n"
            "from levelup.train.optim import AveragedAdamW, Plateau\n"
            "p = torch.nn.Parameter(torch.ones(3)); b = torch.nn.Parameter(torch.ones(1))\n"
            "opt = AveragedAdamW([([p], 1e-3, 1e-2), ([b], 1e-3, 0.0, 'sgd')], ema_decay=0.9)\n"
            "s = Plateau(opt, 0.5, 1)\n"
            "for k in range(5):\n"
            "    p.grad.fill_(1.0); b.grad.fill_(1.0); opt.step(); s.step(1.0)\n"
            "    with opt.averaged(): pass\n"
            "assert opt.fused and opt.scale < 1, (opt.fused, opt.scale)\n"
            "print('torch._dynamo' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"
