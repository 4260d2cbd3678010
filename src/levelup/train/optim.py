"""The optimizer and the schedule that :func:`levelup.train.loop.fit` steps with: torch's AdamW
(and plain SGD for groups that ask for it) with a moving average of the weights, and torch's
ReduceLROnPlateau.

Why torch's: bench/bench_optim.py measured the hand-written AdamW levelup had before (every
parameter a view into one flat buffer, one kernel call per step; now bench/_flat_adamw.py)
against ``torch.optim.AdamW(fused=True)`` in the same training loop, with the same final errors:
per epoch it was 1.42x, 1.29x and 1.12x as fast on the H2 tutorial, water, and water with
forces, a geometric mean of 1.29x (1.14x to 1.42x over repeats; earlier runs 1.24x and 1.31x),
short of the 1.3x that issue 13 asked of hand-written code to keep it (see bench/RESULTS.md,
"optimizer"). Torch's "foreach" AdamW was 1.8x slower, so the fused kernel is used where this
torch has it. (Constructing the first ``torch.optim`` optimizer of a process imports
``torch._dynamo``: about 1.5 s, once.) The plateau schedule is torch's with the same meaning
(relative threshold ``lr_threshold``, ``patience`` epochs, no cool-down, no lowest rate: the
loop stops at its own floor).

The step itself calls torch's fused AdamW kernel (``torch._fused_adamw_``) and SGD's update
(``add_``) directly, with the same arguments and the same state tensors as ``AdamW.step()`` and
``SGD.step()``: the same arithmetic, bit for bit (tests/test_train.py checks it), without the
Python that wraps them (hooks, profiler records, regrouping the tensors on every call). On the
tutorial's pre-training (46 steps of 8 H2 per epoch) that wrapper cost more than the update
(bench/RESULTS.md, "step-overhead"). The first step, and the first after
:meth:`AveragedAdamW.load_state_dict`, goes through torch's ``step()``, which creates the state.

Call :meth:`AveragedAdamW.release` when done: it drops the gradient buffers.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch import Tensor


def _adamw(groups: list[dict[str, Any]], betas: tuple[float, float], eps: float,
           fused: bool | None) -> torch.optim.AdamW:
    """torch's AdamW with its fused kernel where this torch has one for these tensors (None),
    else (or with ``fused=False``) its multi-tensor ("foreach") implementation."""
    if fused is not False:
        try:
            return torch.optim.AdamW(groups, betas=betas, eps=eps, fused=True)
        except (RuntimeError, ValueError):  # no fused kernel for this device or dtype
            if fused:
                raise
    return torch.optim.AdamW(groups, betas=betas, eps=eps, foreach=True)


class AveragedAdamW:
    """AdamW (torch's) over ``groups``: a list of (parameters, learning rate, weight decay), or
    of (parameters, learning rate, weight decay, "sgd") for a group stepped by plain SGD
    instead, ``p -= lr * grad`` with no decay and no moments (TorchANI's and MLatom's recipe
    trains the biases so); optionally with an exponential moving average of the weights.

    Every parameter gets a gradient buffer at once, zeroed in place by :meth:`zero_grad` and
    never replaced, so the hand-written backward pass (:mod:`levelup.train.backprop`) can write
    into it. All rates move together: :attr:`scale` is the current rate over the initial one
    (1 at the start), lowered by the schedule (:func:`plateau`) or :meth:`set_scale`.

    Args:
        groups: the parameter groups, as above.
        betas, eps: Adam's.
        ema_decay: decay per step of the moving average (0: none); with TensorFlow's warm-up,
            the decay of step t is min(ema_decay, (1 + t) / (10 + t)).
        fused: torch's fused AdamW kernel (None: where this torch has it; False: "foreach").
    """

    def __init__(self, groups: Sequence[tuple[Any, ...]],
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 ema_decay: float = 0.0, fused: bool | None = None) -> None:
        adam, sgd = [], []
        for ps, lr, wd, *kind in groups:
            if kind and kind[0] != "sgd":
                raise ValueError(f"unknown group kind {kind[0]!r}; the only one is 'sgd'")
            (sgd if kind else adam).append({"params": list(ps), "lr": lr,
                                            **({} if kind else {"weight_decay": wd})})
        self.params: list[Tensor] = [p for group in adam + sgd for p in group["params"]]
        if len({id(p) for p in self.params}) != len(self.params):
            raise ValueError("a parameter appears in two groups")
        for p in self.params:
            p.grad = torch.zeros_like(p)
        #: torch's optimizers: the AdamW one (None without such groups), the SGD one (likewise)
        self.adamw = _adamw(adam, betas, eps, fused) if adam else None
        self.sgd = torch.optim.SGD(sgd, lr=sgd[0]["lr"]) if sgd else None
        #: each optimizer's initial rates, group by group (torch replaces the group dicts when
        #: loading a state, so they are kept by position)
        self._initial = [[g["lr"] for g in o.param_groups] for o in self.optimizers]
        self.steps = 0
        self.ema_decay = ema_decay
        #: the moving average of the parameters (None without ``ema_decay``)
        self.ema = [p.detach().clone() for p in self.params] if ema_decay > 0 else None
        self._detached = [p.detach() for p in self.params]  # same storage, outside autograd
        #: the kernels' arguments (:meth:`_kernel_arguments`; None: not read yet; False: these
        #: groups need torch's step())
        self._kernel: Any = None
        self._grads: list[Tensor | None] = []  # the .grad buffers the kernels' arguments hold

    @property
    def optimizers(self) -> list[torch.optim.Optimizer]:
        """The torch optimizers stepped, AdamW's first; the first is the one the schedule sets."""
        return [o for o in (self.adamw, self.sgd) if o is not None]

    @property
    def scale(self) -> float:
        """The current learning rates over the initial ones (the schedule's; 1 at the start)."""
        return self.optimizers[0].param_groups[0]["lr"] / self._initial[0][0]

    @property
    def lr(self) -> float:
        """Current learning rate of the first parameter group."""
        return self.optimizers[0].param_groups[0]["lr"]

    def set_scale(self, scale: float) -> None:
        """Set every group's rate to ``scale`` times its initial one."""
        for o, initial in zip(self.optimizers, self._initial, strict=True):
            for g, lr in zip(o.param_groups, initial, strict=True):
                g["lr"] = lr * scale

    def zero_grad(self) -> None:
        """Zero the gradient buffers in place."""
        torch._foreach_zero_([p.grad for p in self.params])

    def step(self) -> None:
        """One update from the gradients in the parameters' ``.grad``, then the moving
        average. (No autograd to switch off: the kernels get detached aliases of the
        parameters; torch's ``step()`` switches it off itself.)"""
        if self.adamw is not None and self.sgd is not None:  # the schedule set AdamW's rates
            scale = self.scale
            for g, lr in zip(self.sgd.param_groups, self._initial[1], strict=True):
                g["lr"] = lr * scale
        if self._kernel and all(p.grad is g for p, g in zip(self.params, self._grads,
                                                             strict=True)):
            self._kernel_step()
        else:  # first step, a new state, or a gradient buffer replaced (autograd may do that)
            for o in self.optimizers:
                o.step()
            if self._kernel is not False:
                self._kernel = self._kernel_arguments() or False
                self._grads = [p.grad for p in self.params]
        self.steps += 1
        if self.ema is not None:
            decay = min(self.ema_decay, (1 + self.steps) / (10 + self.steps))
            torch._foreach_lerp_(self.ema, self._detached, 1 - decay)

    def _kernel_arguments(self) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]],
                                         list[Tensor]] | None:
        """What :meth:`_kernel_step` hands the kernels, read from torch's optimizers after a
        ``step()`` made their state: (for each AdamW group (group, parameters, gradients, first
        and second moments), for each SGD group (group, parameters, gradients), every AdamW step
        count); None where torch's step does more than the plain update (not the fused kernel,
        amsgrad, maximize, momentum, weight decay in SGD, a parameter without state)."""
        adam, sgd, counts = [], [], []
        if self.adamw is not None:
            for g in self.adamw.param_groups:
                if not g.get("fused") or g["amsgrad"] or g["maximize"] or g["capturable"] \
                        or g["differentiable"] or isinstance(g["lr"], Tensor):
                    return None
                states = [self.adamw.state.get(p, {}) for p in g["params"]]
                if any("exp_avg" not in s for s in states):
                    return None
                adam.append((g, [p.detach() for p in g["params"]], [p.grad for p in g["params"]],
                             [s["exp_avg"] for s in states], [s["exp_avg_sq"] for s in states],
                             [s["step"] for s in states]))
                counts += adam[-1][-1]
        if self.sgd is not None:
            for g in self.sgd.param_groups:
                if g["momentum"] or g["weight_decay"] or g["maximize"] or g.get("fused") \
                        or isinstance(g["lr"], Tensor):
                    return None
                sgd.append((g, [p.detach() for p in g["params"]], [p.grad for p in g["params"]]))
        return adam, sgd, counts

    def _kernel_step(self) -> None:
        """``AdamW.step()`` and ``SGD.step()`` without their wrappers: the same kernels on the
        same tensors with the groups' current rates."""
        adam, sgd, counts = self._kernel
        if counts:
            torch._foreach_add_(counts, 1)
        for g, params, grads, m, v, steps in adam:
            beta1, beta2 = g["betas"]
            torch._fused_adamw_(params, grads, m, v, [], steps, lr=g["lr"],
                                beta1=beta1, beta2=beta2, weight_decay=g["weight_decay"],
                                eps=g["eps"], amsgrad=False, maximize=False)
        for g, params, grads in sgd:
            torch._foreach_add_(params, grads, alpha=-g["lr"])

    @contextlib.contextmanager
    def averaged(self) -> Iterator[None]:
        """Inside, the parameters hold the moving average (no-op without one)."""
        if self.ema is None:
            yield
            return
        current = [p.detach().clone() for p in self.params]
        with torch.no_grad():
            for p, e in zip(self.params, self.ema, strict=True):
                p.copy_(e)
        try:
            yield
        finally:
            with torch.no_grad():
                for p, c in zip(self.params, current, strict=True):
                    p.copy_(c)

    def release(self) -> None:
        """Drop the gradient buffers (the parameters end as after any torch training)."""
        for p in self.params:
            p.grad = None
        self._kernel = None

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly: torch's optimizer states, step count, average."""
        return {"adamw": None if self.adamw is None else self.adamw.state_dict(),
                "sgd": None if self.sgd is None else self.sgd.state_dict(), "steps": self.steps,
                "ema": None if self.ema is None else [e.clone() for e in self.ema]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from :meth:`state_dict`'s ``state`` (of the same parameter groups)."""
        for name in ("adamw", "sgd"):
            mine = getattr(self, name)
            if (mine is None) != (state.get(name) is None):
                raise ValueError("optimizer state is for a different set of trainable parameters")
            if mine is not None:
                mine.load_state_dict(state[name])
        self.steps = int(state["steps"])
        self._kernel = None  # torch replaced the state tensors: the next step reads them anew
        if self.ema is not None:
            for e, saved in zip(self.ema, state["ema"], strict=True):
                e.copy_(saved)


def plateau(optimizer: AveragedAdamW, factor: float, patience: int, threshold: float = 0.0
            ) -> torch.optim.lr_scheduler.ReduceLROnPlateau:
    """torch's ReduceLROnPlateau on ``optimizer``'s rates (mode "min", relative threshold): after
    more than ``patience`` epochs without a loss below ``best * (1 - threshold)``, every rate is
    multiplied by ``factor``. No cool-down and no lowest rate (fit stops at its floor)."""
    return torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer.optimizers[0], mode="min", factor=factor, patience=patience,
        threshold=threshold, threshold_mode="rel", cooldown=0, min_lr=0.0, eps=0.0)
