"""levelup.train.optim: the step that calls torch's kernels directly gives, bit for bit, what
torch's ``AdamW.step()`` and ``SGD.step()`` give, through rate changes and a state reload."""

from __future__ import annotations

import torch

from levelup.train.optim import AveragedAdamW


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
