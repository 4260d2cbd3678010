"""The runs that tests/test_distributed.py compares: each function trains on small synthetic data
(a Morse pair potential on H2, water and methane shapes, closed-form energies and forces), the
same in one process (the test) and in each process of a torchrun launch (this file as a script:
``python -m torch.distributed.run --nproc_per_node 2 tests/distributed_worker.py OUT``, which
writes OUT/rank<r>.pt with every rank's results, and a checkpoint OUT/ckpt<r> where rank r would
write one).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

from levelup.data import Database
from levelup.model.ani import ANIModel, Ensemble
from levelup.train.loop import TrainConfig, fit
from levelup.transfer.recipe import finetune, recipe

SELF = {1: -0.5, 6: -37.8, 8: -75.0}
SHAPES = {
    "H2": ([1, 1], [[0, 0, 0], [0, 0, 0.74]]),
    "H2O": ([8, 1, 1], [[0, 0, 0.12], [0, 0.76, -0.47], [0, -0.76, -0.47]]),
    "CH4": ([6, 1, 1, 1, 1], [[0, 0, 0], [0.63, 0.63, 0.63], [-0.63, -0.63, 0.63],
                              [-0.63, 0.63, -0.63], [0.63, -0.63, -0.63]]),
}


def morse_db(n: int, seed: int = 0, scale: float = 1.0) -> Database:
    """``n`` distorted H2/H2O/CH4 molecules with Morse-pair energies "morse" (Hartree) and forces
    "forces/morse" (Hartree/Angstrom); ``scale`` multiplies the pair energy (a "new level")."""
    rng = np.random.default_rng(seed)
    kinds = list(SHAPES)
    species = np.zeros((n, 5), dtype=int)
    xyz = np.zeros((n, 5, 3))
    for m in range(n):
        z, r = SHAPES[kinds[m % 3]]
        species[m, :len(z)] = z
        xyz[m, :len(z)] = np.array(r) + rng.normal(scale=0.08, size=(len(z), 3))
    energies = np.array([sum(SELF[int(z)] for z in row if z) for row in species])
    forces = np.zeros_like(xyz)
    for i in range(5):
        for j in range(i + 1, 5):
            real = (species[:, i] > 0) & (species[:, j] > 0)
            vec = xyz[:, j] - xyz[:, i]
            r = np.linalg.norm(vec, axis=-1)
            x = np.exp(-1.8 * (r - 1.1))
            energies += np.where(real, scale * (0.15 * (1 - x) ** 2 - 0.15), 0.0)
            g = (scale * 0.54 * (1 - x) * x / np.where(real, r, 1.0))[:, None] * vec
            forces[:, i] += g * real[:, None]
            forces[:, j] -= g * real[:, None]
    db = Database(species, xyz)
    db.set("morse", energies)
    db.set("forces/morse", forces)
    return db


def small_model(seed: int = 0) -> ANIModel:
    """A small ANI model (hidden widths 16, 8) for H, C, O."""
    return ANIModel(["H", "C", "O"], hidden=(16, 8), seed=seed)


def l2(model: torch.nn.Module) -> torch.Tensor:
    """A penalty on the trainable weights, (kcal/mol)^2: checks that a penalty counts once."""
    return 1e-3 * sum((p * p).sum() for p in model.parameters() if p.requires_grad)


#: 58 molecules, 20 % for validation: 46 train in batches of 7 (pieces of 4 and 3 on two
#: ranks), the last batch of 4 leaves rank 1 without a molecule
ENERGY = {"batch_size": 7, "max_epochs": 8, "lr_patience": 2, "learning_rate": 3e-3}
#: with forces: batches within groups of equal size (short ones at each group's end)
FORCES = {"batch_size": 6, "max_epochs": 4, "force_weight": 0.1}


def energy_run(checkpoint: str | None = None) -> tuple[ANIModel, dict]:
    """Energy-only training (cached AEVs, hand-written backward pass) with a penalty."""
    model = small_model()
    config = TrainConfig(**ENERGY, checkpoint=checkpoint, checkpoint_every=4)
    history = fit(model, morse_db(58), property="morse", config=config, penalty=l2,
                  progress=False)
    return model, history.to_dict()


def force_run() -> tuple[ANIModel, dict]:
    """Training on energies and forces (AEVs recomputed under autograd)."""
    model = small_model(seed=1)
    history = fit(model, morse_db(40, seed=1), property="morse", config=TrainConfig(**FORCES),
                  progress=False)
    return model, history.to_dict()


def ensemble_run() -> Ensemble:
    """A 3-member ensemble fine-tuned by a gradient recipe to a scaled Morse potential."""
    pretrained = Ensemble([small_model(seed=k) for k in range(3)])
    for member in pretrained.members:
        member.set_self_energies({z: e for z, e in SELF.items()})
    tuned, _ = finetune(pretrained, morse_db(12, seed=2, scale=1.2), property="morse",
                        recipe=recipe("anchored", epochs=15, polish_iterations=5,
                                      anchor_batch=8), progress=False)
    return tuned


def main(out: Path) -> None:
    """Every run above in this torchrun process; results to OUT/rank<RANK>.pt."""
    torch.set_num_threads(1)
    rank = int(os.environ["RANK"])
    t0 = time.perf_counter()
    energy, energy_history = energy_run(str(out / f"ckpt{rank}"))
    t1 = time.perf_counter()
    forces, force_history = force_run()
    t2 = time.perf_counter()
    ensemble = ensemble_run()
    t3 = time.perf_counter()
    torch.save({"energy": energy.state_dict(), "energy_history": energy_history,
                "forces": forces.state_dict(), "force_history": force_history,
                "ensemble": ensemble.state_dict(),
                "seconds": {"energy": t1 - t0, "forces": t2 - t1, "ensemble": t3 - t2}},
               out / f"rank{rank}.pt")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
