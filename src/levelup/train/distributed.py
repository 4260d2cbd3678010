"""Training on several processes with torch.distributed, as ``torchrun`` launches them: what
:func:`levelup.train.loop.fit` and :func:`levelup.transfer.recipe.finetune` use to share work.

Detection: a process started by torchrun has ``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``,
``MASTER_ADDR`` and ``MASTER_PORT`` in its environment. :func:`process_group` initialises
torch.distributed from them when ``WORLD_SIZE`` > 1 and nobody has yet (gloo for a model on the
CPU, nccl for one on CUDA), or uses the default group someone initialised before; otherwise, and
inside :func:`alone`, there is no group and everything runs as one process.

Data parallel training (:func:`levelup.train.steps.train_epoch`): every rank draws the same
seeded permutation of the training molecules, cuts it into the same global batches of
``batch_size`` as one process would, and takes its contiguous piece of each batch (rank r a
fixed share of ``batch_size // size`` or one more; the short last batch may leave some ranks
without molecules). Each rank computes the gradient of its piece's loss (a mean over its
molecules, plus the penalty), scales it by its share of the batch's molecules, and one
all_reduce sums the scaled gradients: the gradient of the single-process batch loss, up to the
order of float additions. Every rank then takes the same optimizer step, so the weights stay
identical without being sent again. The validation set is split into contiguous pieces and the
sums behind its loss are all_reduced, so every rank makes the same schedule, best-epoch and
stopping decisions. Only rank 0 shows progress and writes checkpoints (and, in ``levelup
train``, the model and history). All ranks start from rank 0's weights, and refuse to start when
they were given different data or settings or resume from different checkpoints.

Why an explicit all_reduce and not DistributedDataParallel: (1) energy-only training runs a
hand-written backward pass over cached features (:mod:`levelup.train.backprop`), without
autograd, so DDP's gradient hooks would never fire, and the cached layout calls the element
networks directly, not through a wrapped module's forward; (2) which element networks a batch
uses varies from batch to batch, which DDP handles only with ``find_unused_parameters=True``
(a graph traversal every step); (3) the pieces of a batch differ in size (the last batch, and
the per-size groups of force training), and DDP's plain mean of the ranks' gradients would
weight a molecule of a small piece more; (4) the element networks are small (thousands to about
a hundred thousand parameters), so a step's communication is latency-bound, and one all_reduce
of one flat buffer per step is what DDP's bucketing would achieve at best.

Ensembles (:func:`spread`): member k is fine-tuned by rank k % size on its own (no data
parallelism inside), then every member's weights are broadcast from the rank that made it, so
every rank returns the whole ensemble.

Limits: every rank holds the whole training set (and, for energy-only training, its AEV cache),
so the memory per process does not shrink with more processes; a rank that fails in the middle
of an epoch leaves the others waiting in a collective until torch.distributed's timeout (torchrun
then stops the job). A resumed run needs the checkpoint on a file system all ranks see.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import json
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from levelup.errors import ConfigError
from levelup.train.history import History

#: how many :func:`alone` blocks the caller is in (inside one, there is no process group)
_ALONE = [0]


@contextlib.contextmanager
def alone() -> Iterator[None]:
    """Inside, :func:`process_group` is None: training runs in this process only (an ensemble
    member fine-tuned on one rank while the others fine-tune theirs)."""
    _ALONE[0] += 1
    try:
        yield
    finally:
        _ALONE[0] -= 1


def _world_size() -> int:
    text = os.environ.get("WORLD_SIZE", "1") or "1"
    try:
        return int(text)
    except ValueError:
        raise ConfigError(f"environment variable WORLD_SIZE={text!r} is not a number of "
                          "processes; launch with torchrun, or unset it") from None


def _initialise(device: torch.device) -> None:
    """torch.distributed from torchrun's environment: nccl for CUDA, else gloo."""
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)
    try:
        torch.distributed.init_process_group(backend)
        atexit.register(_shut_down)
    except (ValueError, RuntimeError) as exc:
        message = " ".join(str(exc).split())[:300]
        raise ConfigError(f"WORLD_SIZE={os.environ.get('WORLD_SIZE')} asks for several processes "
                          f"but torch.distributed ({backend}) could not start: {message}. Launch "
                          "with torchrun (it sets RANK, MASTER_ADDR and MASTER_PORT), or unset "
                          "WORLD_SIZE") from None


def _shut_down() -> None:
    """Destroy the process group levelup started, before the interpreter tears down: gloo's
    threads destroyed by static destructors at exit may abort the process ("terminate called
    without an active exception", seen under torchrun with 2 processes)."""
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized():
        with contextlib.suppress(RuntimeError, ValueError):
            dist.destroy_process_group()


def process_group(device: torch.device | str = "cpu") -> Group | None:
    """The group of processes this one trains with, or None when it trains alone: not under
    torchrun (``WORLD_SIZE`` unset or 1, and torch.distributed not initialised), one process,
    or inside :func:`alone`. Initialises torch.distributed on first use (gloo, or nccl when
    ``device``, where the model lives, is CUDA); collectives then run on ``device``."""
    device = torch.device(device)
    dist = torch.distributed
    if _ALONE[0] or not dist.is_available():
        return None
    if not dist.is_initialized():
        if _world_size() <= 1:
            return None
        _initialise(device)
    if dist.get_world_size() == 1:
        return None
    if dist.get_backend() == "nccl" and device.type != "cuda":
        raise ConfigError("torch.distributed runs on nccl, which needs the model on a CUDA "
                          "device; move the model to its rank's GPU, or use gloo for the CPU")
    return Group(dist.get_rank(), dist.get_world_size(), device)


def main_process() -> bool:
    """True unless this is a process of rank > 0 (of an initialised torch.distributed group,
    else by torchrun's ``RANK``): only the main process prints and writes files."""
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank() == 0
    return (os.environ.get("RANK", "0") or "0") == "0"


@dataclass(frozen=True)
class Group:
    """This process's place among ``size`` training processes: ``rank`` (0 is the main one) and
    the ``device`` its collectives run on (the model's)."""

    rank: int
    size: int
    device: torch.device

    @property
    def main(self) -> bool:
        """True on rank 0, the one that shows progress and writes files."""
        return self.rank == 0

    # ------------------------------------------------------------------ sharing the batches

    def piece_bounds(self, batch_size: int) -> tuple[int, int]:
        """(start, stop) of this rank's piece of a full batch: ranks below
        ``batch_size % size`` take one molecule more than the others."""
        base, extra = divmod(batch_size, self.size)
        start = self.rank * base + min(self.rank, extra)
        return start, start + base + (self.rank < extra)

    def piece(self, batch: np.ndarray, batch_size: int) -> np.ndarray:
        """This rank's piece of ``batch`` (molecule indices of a batch of at most
        ``batch_size``; a short batch leaves the last ranks less or nothing)."""
        start, stop = self.piece_bounds(batch_size)
        return batch[start:stop]

    def epoch_order(self, order: np.ndarray, batch_size: int) -> tuple[np.ndarray, list[int]]:
        """(this rank's molecules: its piece of every global batch of ``order``, batch after
        batch; the size of each global batch). Every piece but the last has this rank's full
        share, so cutting the result into batches of that share gives piece k as batch k."""
        starts = range(0, len(order), batch_size)
        pieces = [self.piece(order[s:s + batch_size], batch_size) for s in starts]
        mine = np.concatenate(pieces) if pieces else order[:0]
        return mine, [min(batch_size, len(order) - s) for s in starts]

    def shard(self, count: int) -> np.ndarray:
        """Indices of this rank's contiguous piece of ``count`` items (sizes differ by one)."""
        return np.array_split(np.arange(count), self.size)[self.rank]

    # ------------------------------------------------------------------ collectives

    def sum(self, values: Sequence[float]) -> list[float]:
        """``values`` summed over all ranks (float64), element by element."""
        t = torch.tensor(list(values), dtype=torch.float64, device=self.device)
        torch.distributed.all_reduce(t)
        return t.tolist()

    def any(self, flag: bool) -> bool:
        """True on every rank when ``flag`` is True on some rank."""
        return self.sum([float(flag)])[0] > 0

    def average_gradients(self, params: Sequence[Tensor], share: float) -> None:
        """Replace every ``p.grad`` by the sum over ranks of ``share * p.grad`` (share: this
        rank's molecules over the batch's, so the result is the whole batch's gradient); one
        all_reduce of one flat buffer per dtype."""
        by_dtype: dict[torch.dtype, list[Tensor]] = {}
        for p in params:
            by_dtype.setdefault(p.grad.dtype, []).append(p.grad)
        for grads in by_dtype.values():
            flat = torch.cat([g.reshape(-1) for g in grads]).mul_(share)
            torch.distributed.all_reduce(flat)
            for g, part in zip(grads, flat.split([g.numel() for g in grads]), strict=True):
                g.copy_(part.view_as(g))

    def broadcast_module(self, module: nn.Module, src: int = 0, flags: bool = False) -> None:
        """Give every rank ``src``'s parameters and buffers of ``module`` (same structure on
        every rank), and with ``flags`` its parameters' ``requires_grad`` too."""
        with torch.no_grad():
            for t in module.state_dict().values():
                buf = t.detach().to(self.device, torch.uint8 if t.dtype == torch.bool else None)
                buf = buf.contiguous().clone()
                torch.distributed.broadcast(buf, src)
                t.copy_(buf.to(t.device, t.dtype))
        if flags:
            params = list(module.parameters())
            mask = torch.tensor([p.requires_grad for p in params], dtype=torch.uint8,
                                device=self.device)
            torch.distributed.broadcast(mask, src)
            for p, keep in zip(params, mask.tolist(), strict=True):
                p.requires_grad_(bool(keep))

    def broadcast_text(self, text: str | None, src: int) -> str:
        """``src``'s ``text`` on every rank (others pass None)."""
        data = (text or "").encode() if self.rank == src else b""
        length = torch.tensor([len(data)], dtype=torch.int64, device=self.device)
        torch.distributed.broadcast(length, src)
        buf = torch.zeros(int(length), dtype=torch.uint8, device=self.device)
        if self.rank == src:
            buf.copy_(torch.frombuffer(bytearray(data), dtype=torch.uint8))
        torch.distributed.broadcast(buf, src)
        return bytes(buf.cpu().tolist()).decode()

    def agree(self, text: str) -> bool:
        """True on every rank when every rank passed the same ``text``."""
        digest = hashlib.sha256(text.encode()).hexdigest()
        return not self.any(self.broadcast_text(digest, 0) != digest)

    def start(self, model: nn.Module, fingerprint: str, first_epoch: int) -> None:
        """Check that every rank trains on the same data and settings from the same epoch, then
        give every rank rank 0's weights (a model built without a seed differs per rank)."""
        if not self.agree(fingerprint):
            raise ConfigError(f"the {self.size} training processes were given different data or "
                              "settings: give every rank the same database files and flags")
        if not self.agree(str(first_epoch)):
            raise ConfigError("the training processes resume from different epochs: put the "
                              "checkpoint on a file system every node sees (or resume none)")
        self.broadcast_module(model, 0)


def spread(group: Group, count: int, work: Callable[[int], tuple[nn.Module, History]],
           template: Callable[[int], nn.Module]) -> list[tuple[nn.Module, History]]:
    """``work(k)`` for k in range(count), item k on rank ``k % size`` (inside :func:`alone`),
    then every item on every rank: the module's weights and ``requires_grad`` flags broadcast
    into ``template(k)`` (a module of the same structure) and the History as JSON. When
    ``work`` fails on some rank, every rank raises (the failing one its own error)."""
    mine: dict[int, tuple[nn.Module, History]] = {}
    failure: Exception | None = None
    with alone():
        for k in range(group.rank, count, group.size):
            try:
                mine[k] = work(k)
            except Exception as exc:  # noqa: BLE001 - re-raised below, after telling the others
                failure = exc
                break
    if group.any(failure is not None):
        if failure is not None:
            raise failure
        raise RuntimeError("another training process failed while fine-tuning its share of the "
                           "ensemble; its error is in its own output")
    out = []
    for k in range(count):
        owner = k % group.size
        module, history = mine[k] if owner == group.rank else (template(k), None)
        group.broadcast_module(module, owner, flags=True)
        text = group.broadcast_text(json.dumps(history.to_dict()) if history else None, owner)
        out.append((module, History.from_dict(json.loads(text))))
    return out
