"""levelup's former hand-written optimizer and schedule, kept here as bench/bench_optim.py's
reference (src/levelup/train/optim.py before issue 13 item 5): AdamW on one flat buffer, and the
reduce-on-plateau schedule.

Why not ``torch.optim.AdamW``: the networks of an ANI model have many small tensors, and a
training step on a small batch is mostly fixed per-step overhead. Here every trainable parameter
becomes a view into one contiguous buffer, and so does its gradient, so a step is one call of
torch's fused Adam kernel on one vector (seven element-wise operations when the learning rates
differ between groups), whatever the number of tensors. (Constructing any ``torch.optim``
optimizer also imports ``torch._dynamo``: seconds of start-up on a small machine.) The
arithmetic is torch's AdamW (Loshchilov and Hutter 2019): decoupled weight decay
``p *= 1 - lr * wd``, then the bias-corrected Adam update; tests/test_train.py checks it against
``torch.optim.AdamW``.

Call :meth:`FlatAdamW.release` when done: it gives every parameter its own storage back.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch import Tensor

#: torch's fused Adam kernel (what ``torch.optim.Adam(fused=True)`` calls), when this torch has it
_FUSED = getattr(torch, "_fused_adam_", None)


class FlatAdamW:
    """AdamW over ``groups``: a list of (parameters, learning rate, weight decay), or of
    (parameters, learning rate, weight decay, "sgd") for a group stepped by plain SGD instead,
    ``p -= lr * grad`` with no decay and no moments (TorchANI's and MLatom's recipe trains the
    biases so).

    The learning rates of all groups are multiplied by :attr:`scale` (1 at the start), which
    the schedule lowers.
    """

    def __init__(self, groups: Sequence[tuple[Any, ...]],
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 ema_decay: float = 0.0) -> None:
        self.params: list[Tensor] = [p for group in groups for p in group[0]]
        if len({id(p) for p in self.params}) != len(self.params):
            raise ValueError("a parameter appears in two groups")
        ref = self.params[0]
        sizes = [p.numel() for p in self.params]
        total = sum(sizes)
        self.flat = torch.empty(total, dtype=ref.dtype, device=ref.device)
        self.grad = torch.zeros_like(self.flat)
        lr = torch.empty_like(self.flat)
        wd = torch.empty_like(self.flat)
        sgd = torch.zeros(total, dtype=torch.bool, device=ref.device)
        offset = 0
        for ps, group_lr, group_wd, *kind in groups:
            if kind and kind[0] != "sgd":
                raise ValueError(f"unknown group kind {kind[0]!r}; the only one is 'sgd'")
            for p in ps:
                n = p.numel()
                self.flat[offset:offset + n].copy_(p.detach().reshape(-1))
                lr[offset:offset + n] = group_lr
                wd[offset:offset + n] = 0.0 if kind else group_wd
                sgd[offset:offset + n] = bool(kind)
                p.data = self.flat[offset:offset + n].view_as(p)
                p.grad = self.grad[offset:offset + n].view_as(p)
                offset += n
        #: positions stepped by plain SGD (None: every one by AdamW)
        self._sgd = sgd.nonzero().view(-1) if bool(sgd.any()) else None
        if self._sgd is not None:
            self._sgd_lr = lr[self._sgd]
            adam = (~sgd).nonzero().view(-1)
            lr = lr.clone()
            lr[self._sgd] = float(lr[adam[0]]) if len(adam) else 0.0  # keep the AdamW rate uniform
        # one learning rate for all: a scalar keeps the update one fused addcdiv
        self._lr_uniform = float(lr[0]) if bool((lr == lr[0]).all()) else None
        self.base_lr = lr
        self.weight_decay = wd
        self.betas, self.eps = betas, eps
        self.exp_avg = torch.zeros_like(self.flat)
        self.exp_avg_sq = torch.zeros_like(self.flat)
        self.steps = 0
        self.scale = 1.0
        self._decay: Tensor | None = None
        self._step_tensor = torch.zeros((), dtype=torch.float32, device=ref.device)
        self.ema_decay = ema_decay
        #: exponential moving average of the parameters (None without ``ema_decay``)
        self.ema = self.flat.clone() if ema_decay > 0 else None

    def zero_grad(self) -> None:
        self.grad.zero_()

    @torch.no_grad()
    def step(self) -> None:
        """One AdamW update from the gradients in the parameters' ``.grad``, then the moving
        average (with TensorFlow's warm-up: decay min(ema_decay, (1 + t) / (10 + t)))."""
        self._update()
        if self.ema is not None:
            decay = min(self.ema_decay, (1 + self.steps) / (10 + self.steps))
            self.ema.lerp_(self.flat, 1 - decay)

    @contextlib.contextmanager
    def averaged(self) -> Iterator[None]:
        """Inside, the parameters hold the moving average (no-op without one)."""
        if self.ema is None:
            yield
            return
        current = self.flat.clone()
        self.flat.copy_(self.ema)
        try:
            yield
        finally:
            self.flat.copy_(current)

    def _update(self) -> None:
        if self._sgd is None:
            self._adamw()
            return
        # plain SGD on its positions: AdamW runs over the whole buffer (one kernel), then the
        # SGD positions get their own update from the values they had before
        before = self.flat[self._sgd]
        self._adamw()
        self.flat[self._sgd] = before - (self._sgd_lr * self.scale) * self.grad[self._sgd]

    def _adamw(self) -> None:
        beta1, beta2 = self.betas
        self.steps += 1
        if self._decay is None:  # 1 - lr * wd, per element; recomputed when the scale changes
            self._decay = 1 - self.base_lr * self.scale * self.weight_decay
        self.flat.mul_(self._decay)
        if self._lr_uniform is not None and _FUSED is not None:
            # torch's own fused Adam kernel on the one flat tensor (decay applied above)
            self._step_tensor.fill_(self.steps)
            try:
                _FUSED([self.flat], [self.grad], [self.exp_avg], [self.exp_avg_sq], [],
                       [self._step_tensor], lr=self._lr_uniform * self.scale, beta1=beta1,
                       beta2=beta2, weight_decay=0.0, eps=self.eps, amsgrad=False,
                       maximize=False)
                return
            except (RuntimeError, TypeError):  # a torch without this kernel for this dtype
                pass
        self.exp_avg.lerp_(self.grad, 1 - beta1)
        self.exp_avg_sq.mul_(beta2).addcmul_(self.grad, self.grad, value=1 - beta2)
        bias1 = 1 - beta1 ** self.steps
        bias2_sqrt = math.sqrt(1 - beta2 ** self.steps)
        denom = (self.exp_avg_sq.sqrt() / bias2_sqrt).add_(self.eps)
        if self._lr_uniform is not None:
            self.flat.addcdiv_(self.exp_avg, denom, value=-self._lr_uniform * self.scale / bias1)
        else:
            self.flat.addcdiv_(self.exp_avg * self.base_lr, denom, value=-self.scale / bias1)

    @property
    def lr(self) -> float:
        """Current learning rate of the first parameter."""
        return float(self.base_lr[0]) * self.scale

    def set_scale(self, scale: float) -> None:
        self.scale = scale
        self._decay = None

    def release(self) -> None:
        """Give each parameter its own storage again (and drop the shared gradients)."""
        for p in self.params:
            p.data = p.data.clone()
            p.grad = None

    def state_dict(self) -> dict[str, Any]:
        return {"exp_avg": self.exp_avg.clone(), "exp_avg_sq": self.exp_avg_sq.clone(),
                "steps": self.steps, "scale": self.scale,
                "ema": None if self.ema is None else self.ema.clone()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state["exp_avg"].shape != self.exp_avg.shape:
            raise ValueError("optimizer state is for a different set of trainable parameters")
        self.exp_avg.copy_(state["exp_avg"])
        self.exp_avg_sq.copy_(state["exp_avg_sq"])
        self.steps = int(state["steps"])
        if self.ema is not None:
            self.ema.copy_(state["ema"])
        self.set_scale(float(state["scale"]))


class Plateau:
    """Reduce-on-plateau, as ``torch.optim.lr_scheduler.ReduceLROnPlateau`` (mode "min",
    relative threshold): after more than ``patience`` epochs without a loss below
    ``best * (1 - threshold)``, multiply the optimizer's learning-rate scale by ``factor``."""

    def __init__(self, optimizer: FlatAdamW, factor: float, patience: int,
                 threshold: float = 0.0) -> None:
        self.optimizer, self.factor, self.patience = optimizer, factor, patience
        self.threshold = threshold
        self.best = math.inf
        self.bad_epochs = 0

    def step(self, loss: float) -> None:
        if loss < self.best * (1 - self.threshold):
            self.best, self.bad_epochs = loss, 0
        else:
            self.bad_epochs += 1
        if self.bad_epochs > self.patience:
            self.optimizer.set_scale(self.optimizer.scale * self.factor)
            self.bad_epochs = 0

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "bad_epochs": self.bad_epochs}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.bad_epochs = float(state["best"]), int(state["bad_epochs"])
