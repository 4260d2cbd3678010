"""The optimizer and the schedule that :func:`levelup.train.loop.fit` steps with: AdamW (and
plain SGD for groups that ask for it) with a moving average of the weights, and a
reduce-on-plateau schedule.

The arithmetic is torch's: every AdamW step is one call of torch's fused AdamW kernel
(``torch._fused_adamw_``, what ``torch.optim.AdamW(fused=True).step()`` calls) per group of
equal rate and decay, and an SGD step is torch's ``add_``, with the same arguments and state
tensors as ``torch.optim.AdamW`` and ``torch.optim.SGD``: the same numbers, bit for bit
(tests/test_train_optim.py). Where there is no fused kernel for the parameters' device and
dtype (or with ``fused=False``) torch's functional multi-tensor ("foreach") AdamW runs instead.
The schedule, :class:`Plateau`, is torch's ReduceLROnPlateau rule (mode "min", relative
threshold, no cool-down, no lowest rate: the loop stops at its own floor), written out.

Why not the ``torch.optim`` objects themselves (levelup used them until this revision): their
Python around the kernel (hooks, profiler records, regrouping the tensors on every call) cost
more than the update on the tutorial's pre-training (46 steps of 8 H2 per epoch), and building
the first ``torch.optim`` optimizer of a process imports ``torch._dynamo``, about 1.5 s, paid
by every script that trains once (bench/RESULTS.md, "step-overhead"). The update itself stays
torch's kernel: bench/bench_optim.py measured a hand-written flat-buffer AdamW
(bench/_flat_adamw.py) at only 1.29x the fused kernel, short of the 1.3x that issue 13 asked of
hand-written arithmetic (bench/RESULTS.md, "optimizer").

Call :meth:`AveragedAdamW.release` when done: it drops the gradient buffers.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch import Tensor


def _fused_kernel_runs(params: Sequence[Tensor]) -> bool:
    """True when torch's fused AdamW kernel takes tensors of the devices and dtypes of
    ``params`` (tried once per kind on a one-element tensor)."""
    for device, dtype in {(p.device, p.dtype) for p in params}:
        probe = torch.zeros(1, device=device, dtype=dtype)
        try:
            torch._fused_adamw_([probe], [probe.clone()], [probe.clone()], [probe.clone()], [],
                                [torch.zeros((), dtype=torch.float32, device=device)], lr=0.0, beta1=0.9,
                                beta2=0.999, weight_decay=0.0, eps=1e-8, amsgrad=False,
                                maximize=False)
        except (RuntimeError, NotImplementedError, AttributeError):
            return False
    return True


class AveragedAdamW:
    """AdamW over ``groups``: a list of (parameters, learning rate, weight decay), or of
    (parameters, learning rate, weight decay, "sgd") for a group stepped by plain SGD instead,
    ``p -= lr * grad`` with no decay and no moments (TorchANI's and MLatom's recipe trains the
    biases so); optionally with an exponential moving average of the weights.

    Every parameter gets a gradient buffer at once, zeroed in place by :meth:`zero_grad`, so the
    hand-written backward pass (:mod:`levelup.train.backprop`) can write into it. All rates move
    together: :attr:`scale` is the current rate over the initial one (1 at the start), lowered
    by the schedule (:class:`Plateau`) or :meth:`set_scale`.

    Args:
        groups: the parameter groups, as above.
        betas, eps: Adam's.
        ema_decay: decay per step of the moving average (0: none); with TensorFlow's warm-up,
            the decay of step t is min(ema_decay, (1 + t) / (10 + t)).
        fused: torch's fused AdamW kernel (None: where it takes these tensors; False: torch's
            "foreach" AdamW; True: the kernel or a RuntimeError).
    """

    def __init__(self, groups: Sequence[tuple[Any, ...]],
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 ema_decay: float = 0.0, fused: bool | None = None) -> None:
        adam, sgd = [], []
        for ps, lr, wd, *kind in groups:
            if kind and kind[0] != "sgd":
                raise ValueError(f"unknown group kind {kind[0]!r}; the only one is 'sgd'")
            (sgd if kind else adam).append({"params": list(ps), "lr": lr, "initial_lr": lr,
                                            "weight_decay": 0.0 if kind else wd,
                                            "sgd": bool(kind)})
        #: the groups, AdamW's first: dicts with "params", "lr" (current), "initial_lr",
        #: "weight_decay" and "sgd" (True: stepped by plain SGD)
        self.param_groups: list[dict[str, Any]] = adam + sgd
        self.params: list[Tensor] = [p for group in self.param_groups for p in group["params"]]
        if len({id(p) for p in self.params}) != len(self.params):
            raise ValueError("a parameter appears in two groups")
        for p in self.params:
            p.grad = torch.zeros_like(p)
        self.betas, self.eps = betas, eps
        adam_params = [p for group in adam for p in group["params"]]
        self.fused = fused is not False and _fused_kernel_runs(adam_params)
        if fused and not self.fused:
            raise RuntimeError("torch has no fused AdamW kernel for these parameters' device "
                               "and dtype; use fused=None or False")
        # Adam's state per parameter, as torch.optim.AdamW makes it: step count (a float32
        # scalar; for the fused kernel on the parameter's device, and one tensor shared by all
        # parameters of a device, which the kernel only reads: one add per step), first and
        # second moments
        shared: dict[torch.device, Tensor] = {}

        def count(p: Tensor) -> Tensor:
            if not self.fused:
                return torch.zeros((), dtype=torch.get_default_dtype())
            return shared.setdefault(p.device, torch.zeros((), dtype=torch.float32,
                                                           device=p.device))
        self.state = {id(p): {"step": count(p), "exp_avg": torch.zeros_like(p),
                              "exp_avg_sq": torch.zeros_like(p)} for p in adam_params}
        self._shared_counts = list(shared.values())
        self.steps = 0
        self.ema_decay = ema_decay
        #: the moving average of the parameters (None without ``ema_decay``)
        self.ema = [p.detach().clone() for p in self.params] if ema_decay > 0 else None
        self._detached = [p.detach() for p in self.params]  # same storage, outside autograd
        self._arguments()

    def _arguments(self) -> None:
        """Read the lists the kernels take, once: per AdamW group (group, parameters (detached:
        same storage, no autograd), gradients, first and second moments, step counts), per SGD
        group (group, parameters, gradients)."""
        self._adam, self._sgd = [], []
        for g in self.param_groups:
            ps = [p.detach() for p in g["params"]]
            grads = [p.grad for p in g["params"]]
            if g["sgd"]:
                self._sgd.append((g, ps, grads))
                continue
            st = [self.state[id(p)] for p in g["params"]]
            self._adam.append((g, ps, grads, [s["exp_avg"] for s in st],
                               [s["exp_avg_sq"] for s in st], [s["step"] for s in st]))
        self._grads = [p.grad for p in self.params]

    @property
    def scale(self) -> float:
        """The current learning rates over the initial ones (the schedule's; 1 at the start)."""
        g = self.param_groups[0]
        return g["lr"] / g["initial_lr"]

    @property
    def lr(self) -> float:
        """Current learning rate of the first parameter group."""
        return self.param_groups[0]["lr"]

    def set_scale(self, scale: float) -> None:
        """Set every group's rate to ``scale`` times its initial one."""
        for g in self.param_groups:
            g["lr"] = g["initial_lr"] * scale

    def zero_grad(self) -> None:
        """Zero the gradient buffers in place."""
        torch._foreach_zero_([p.grad for p in self.params])

    def step(self) -> None:
        """One update from the gradients in the parameters' ``.grad``, then the moving average.
        (No autograd to switch off: the kernels get detached aliases of the parameters.)"""
        if self._adam and self._sgd:  # the schedule lowered AdamW's rates: SGD's follow
            scale = self.scale
            for g, _, _ in self._sgd:
                g["lr"] = g["initial_lr"] * scale
        if not all(p.grad is g for p, g in zip(self.params, self._grads, strict=True)):
            self._arguments()  # a gradient buffer was replaced (autograd may do that)
        for c in self._shared_counts:  # (torch's foreach AdamW advances its own)
            c.add_(1)
        beta1, beta2 = self.betas
        for g, ps, grads, m, v, counts in self._adam:
            if self.fused:
                torch._fused_adamw_(ps, grads, m, v, [], counts, lr=g["lr"], beta1=beta1,
                                    beta2=beta2, weight_decay=g["weight_decay"], eps=self.eps,
                                    amsgrad=False, maximize=False)
            else:
                _foreach_adamw(ps, grads, m, v, counts, lr=g["lr"], beta1=beta1, beta2=beta2,
                               weight_decay=g["weight_decay"], eps=self.eps)
        for g, ps, grads in self._sgd:
            torch._foreach_add_(ps, grads, alpha=-g["lr"])
        self.steps += 1
        if self.ema is not None:
            decay = min(self.ema_decay, (1 + self.steps) / (10 + self.steps))
            torch._foreach_lerp_(self.ema, self._detached, 1 - decay)

    @contextlib.contextmanager
    def averaged(self) -> Iterator[None]:
        """Inside, the parameters hold the moving average (no-op without one)."""
        if self.ema is None:
            yield
            return
        current = [p.clone() for p in self._detached]
        torch._foreach_copy_(self._detached, self.ema)
        try:
            yield
        finally:
            torch._foreach_copy_(self._detached, current)

    def release(self) -> None:
        """Drop the gradient buffers (the parameters end as after any torch training)."""
        for p in self.params:
            p.grad = None
        self._grads = [None] * len(self.params)

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly: rates, Adam's state (step counts, moments)
        parameter by parameter in group order, the step count, the moving average."""
        adam = [self.state[id(p)] for g in self.param_groups if not g["sgd"] for p in g["params"]]
        return {"lr": [g["lr"] for g in self.param_groups],
                "adam": [{k: v.clone() for k, v in s.items()} for s in adam],
                "steps": self.steps,
                "ema": None if self.ema is None else [e.clone() for e in self.ema]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from :meth:`state_dict`'s ``state`` (of the same parameter groups)."""
        adam = [self.state[id(p)] for g in self.param_groups if not g["sgd"] for p in g["params"]]
        saved = state.get("adam")
        if (len(state.get("lr", ())) != len(self.param_groups) or saved is None
                or len(saved) != len(adam) or any(s["exp_avg"].shape != x["exp_avg"].shape
                                                  for s, x in zip(saved, adam, strict=True))):
            raise ValueError("optimizer state is for a different set of trainable parameters")
        for g, lr in zip(self.param_groups, state["lr"], strict=True):
            g["lr"] = float(lr)
        for mine, theirs in zip(adam, saved, strict=True):
            for key, tensor in mine.items():
                tensor.copy_(theirs[key])  # in place: the kernels' lists stay valid
        self.steps = int(state["steps"])
        if self.ema is not None:
            for e, s in zip(self.ema, state["ema"], strict=True):
                e.copy_(s)


def _foreach_adamw(params: list[Tensor], grads: list[Tensor], exp_avgs: list[Tensor],
                   exp_avg_sqs: list[Tensor], counts: list[Tensor], **hyper: float) -> None:
    """torch's functional multi-tensor AdamW on these tensors (it advances the step counts),
    for devices and dtypes without a fused kernel. The import of ``torch._dynamo`` it costs
    once (about 1.5 s) is paid only here."""
    from torch.optim.adamw import adamw

    adamw(params, grads, exp_avgs, exp_avg_sqs, [], counts, foreach=True, fused=False,
          amsgrad=False, maximize=False, **hyper)


class Plateau:
    """Reduce-on-plateau, torch's ReduceLROnPlateau rule (mode "min", relative threshold, no
    cool-down, no lowest rate): after more than ``patience`` calls of :meth:`step` without a
    loss below ``best * (1 - threshold)``, the AdamW groups' rates of ``optimizer`` (its SGD
    groups' when it has no AdamW group) are multiplied by ``factor``; the SGD groups follow at
    the next step (:meth:`AveragedAdamW.step`).

    Attributes:
        best: the lowest loss so far (inf before the first).
        num_bad_epochs: calls since the last improvement or reduction.
    """

    def __init__(self, optimizer: AveragedAdamW, factor: float, patience: int,
                 threshold: float = 0.0) -> None:
        self.optimizer, self.factor = optimizer, factor
        self.patience, self.threshold = patience, threshold
        self.best, self.num_bad_epochs, self.last_epoch = math.inf, 0, 0

    def step(self, loss: float) -> None:
        """Record one epoch's ``loss``; lower the rates when it has stalled."""
        current = float(loss)
        self.last_epoch += 1
        if current < self.best * (1.0 - self.threshold):
            self.best, self.num_bad_epochs = current, 0
        else:
            self.num_bad_epochs += 1
        if self.num_bad_epochs > self.patience:
            groups = self.optimizer.param_groups
            for g in [g for g in groups if not g["sgd"]] or groups:
                lowered = max(g["lr"] * self.factor, 0.0)
                if g["lr"] - lowered > 0.0:
                    g["lr"] = lowered
            self.num_bad_epochs = 0

    def state_dict(self) -> dict[str, Any]:
        """The schedule's state (best loss, epochs without improvement, epochs seen)."""
        return {"best": self.best, "num_bad_epochs": self.num_bad_epochs,
                "last_epoch": self.last_epoch}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from :meth:`state_dict`'s ``state``."""
        self.best = float(state["best"])
        self.num_bad_epochs = int(state["num_bad_epochs"])
        self.last_epoch = int(state["last_epoch"])


def plateau(optimizer: AveragedAdamW, factor: float, patience: int, threshold: float = 0.0
            ) -> Plateau:
    """The :class:`Plateau` schedule on ``optimizer``'s rates (kept for fit's callers)."""
    return Plateau(optimizer, factor, patience, threshold)
