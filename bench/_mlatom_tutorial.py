"""MLatom 3.25.5 side of bench/bench_tutorial_protocol.py: the tutorial's three trainings on
given labels (no PySCF), seeded, in bench/.mlatom-venv.

Usage: python _mlatom_tutorial.py LABELS.npz OUT_PREFIX --seed S [--pretrained WEIGHTS.npz]
       [--no-scratch]

LABELS.npz holds ``hf`` and ``cisd`` (451,) Hartree for the tutorial's 451 H2 geometries. The
script builds the tutorial's molecular database, then (each as the tutorial writes it):
pre-trains ANI-HF.pt on the HF energies (or, with --pretrained, writes the given network weights
and self energies into ANI-HF.pt instead: a model pre-trained elsewhere), copies it to
ANI-HF-TL.pt, fixes layers [[0, 6]], resets the self energies and fine-tunes on the 10 + 2 CISD
points at 1e-4, and trains ANI_CISD.pt from scratch on the same points (unless --no-scratch).
Writes OUT_PREFIX.npz (the predictions, Hartree; the validation loss and learning rate of each
epoch of the transfer) and OUT_PREFIX.json (epochs, seconds); OUT_PREFIX_pretrained.npz and
OUT_PREFIX_transfer.npz hold the networks' weights (TorchANI names ``H.0.weight`` ...) and ``self_energies``.
MLatom seeds nothing itself: this script seeds random, numpy and torch with S.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import time

os.environ.setdefault("MLATOM_NO_VERSION_CHECK", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

_R = torch.optim.lr_scheduler.ReduceLROnPlateau
if not hasattr(_R, "is_better"):  # MLatom 3.25 + torch 2.13
    _R.is_better = _R._is_better
_LOG: list[tuple[int, float, float]] = []  # (scheduler id, validation MSE, learning rate)
_step = _R.step


def _logged_step(self, metric, *args, **kwargs):
    _LOG.append((id(self), float(metric), float(self.optimizer.param_groups[0]["lr"])))
    return _step(self, metric, *args, **kwargs)


_R.step = _logged_step

import mlatom as ml  # noqa: E402


def weights(model_file: str) -> dict[str, np.ndarray]:
    d = torch.load(model_file, map_location="cpu", weights_only=False)
    out = {k: v.numpy() for k, v in d["nn"].items()}
    out["self_energies"] = np.asarray(d["energy_shifter"].self_energies, dtype=np.float64)
    return out


def write_weights(model_file: str, values: dict[str, np.ndarray]) -> None:
    """Put network weights and self energies into an existing MLatom model file."""
    d = torch.load(model_file, map_location="cpu", weights_only=False)
    for key, tensor in d["nn"].items():
        d["nn"][key] = torch.from_numpy(np.asarray(values[key])).to(tensor.dtype).reshape(tensor.shape)
    for symbol, net in d["network"].items():
        net.load_state_dict({k.split(".", 1)[1]: v for k, v in d["nn"].items()
                             if k.startswith(symbol + ".")})
    d["energy_shifter"].self_energies = torch.tensor(values["self_energies"], dtype=torch.float64)
    d["args"]["self_energies"] = d["energy_shifter"].self_energies
    torch.save(d, model_file)


def epochs_since(mark: int) -> list[tuple[float, float]]:
    """(validation MSE, rate) of each epoch of the first scheduler stepped after ``mark``."""
    new = _LOG[mark:]
    return [(m, lr) for i, m, lr in new if new and i == new[0][0]]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("labels")
    parser.add_argument("out")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--pretrained", default=None)
    parser.add_argument("--no-scratch", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    labels = np.load(args.labels)
    out = os.path.abspath(args.out)
    work = out + "_work"
    os.makedirs(work, exist_ok=True)
    os.chdir(work)
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)

    xyz = np.zeros((451, 2, 3))
    xyz[:, 1, 2] = np.arange(0.5, 5.01, 0.01)
    z = np.ones((451, 2)).astype(int)
    molDB = ml.molecular_database.from_numpy(coordinates=xyz, species=z)  # noqa: N806
    molDB.add_scalar_properties(labels["hf"], "HF_energy")
    molDB.add_scalar_properties(labels["cisd"], "CISD_energy")
    times, epochs = {}, {}
    for f in ("ANI-HF.pt", "ANI-HF-TL.pt", "ANI_CISD.pt"):
        if os.path.exists(f):
            os.remove(f)

    ani = ml.models.ani(model_file="ANI-HF.pt", verbose=False)
    mark, t0 = len(_LOG), time.perf_counter()
    if args.pretrained:  # one epoch to create the file, then the given weights replace it
        ani.train(molecular_database=molDB, property_to_learn="HF_energy",
                  hyperparameters={"max_epochs": 1})
        write_weights("ANI-HF.pt", dict(np.load(args.pretrained)))
        ani = ml.models.ani(model_file="ANI-HF.pt", verbose=False)
    else:
        ani.train(molecular_database=molDB, property_to_learn="HF_energy")
    times["pretraining"], epochs["pretraining"] = time.perf_counter() - t0, len(epochs_since(mark))
    ani.predict(molecular_database=molDB, property_to_predict="ANI_HF_energy")

    shutil.copy("ANI-HF.pt", "ANI-HF-TL.pt")
    ani = ml.models.ani(model_file="ANI-HF-TL.pt", verbose=False)
    ani.fix_layers([[0, 6]])
    step = 40
    val = molDB[::step][::10]
    sub = ml.molecular_database([mol for mol in molDB[::step] if mol not in val])
    ani.energy_shifter.self_energies = None
    mark, t0 = len(_LOG), time.perf_counter()
    ani.train(molecular_database=sub, validation_molecular_database=val,
              property_to_learn="CISD_energy", hyperparameters={"learning_rate": 0.0001},
              reset_optimizer=True)
    times["transfer"] = time.perf_counter() - t0
    tl_log = epochs_since(mark)
    epochs["transfer"] = len(tl_log)
    ani.predict(molecular_database=molDB, property_to_predict="ANI_TL_energy")

    if args.no_scratch:
        molDB.add_scalar_properties(np.full(451, np.nan), "ANI_CISD_energy")
    else:
        ani_cisd = ml.models.ani(model_file="ANI_CISD.pt", verbose=False)
        mark, t0 = len(_LOG), time.perf_counter()
        ani_cisd.train(molecular_database=sub, validation_molecular_database=val,
                       property_to_learn="CISD_energy")
        times["scratch"], epochs["scratch"] = time.perf_counter() - t0, len(epochs_since(mark))
        ani_cisd.predict(molecular_database=molDB, property_to_predict="ANI_CISD_energy")

    np.savez(out + ".npz", **{n: molDB.get_properties(n) for n in
                              ("ANI_HF_energy", "ANI_TL_energy", "ANI_CISD_energy")},
             transfer_val_mse=np.array([m for m, _ in tl_log]),
             transfer_lr=np.array([lr for _, lr in tl_log]))
    np.savez(out + "_pretrained.npz", **weights("ANI-HF.pt"))
    np.savez(out + "_transfer.npz", **weights("ANI-HF-TL.pt"))
    with open(out + ".json", "w") as handle:
        json.dump({"seed": args.seed, "pretrained": args.pretrained, "times_s": times,
                   "epochs": epochs, "torch_threads": torch.get_num_threads()}, handle, indent=1)


if __name__ == "__main__":
    main()
