"""MLatom 3.25.5 running its own transfer-learning tutorial protocol on one system of
bench/transfer_suite, one seed, several budgets. Runs in bench/.mlatom-venv (numpy, torch,
mlatom and bench/transfer_suite/protocol.py only); bench/bench_mlatom_suite.py drives it.

Usage: python _mlatom_suite.py INPUT.npz OUT.json --seed S [--budgets 8 16 32]
       [--save-pretrained W.npz] [--pretrained W.npz] [--transfer-seeds 0 1 2] [--no-scratch]

--save-pretrained writes the pre-trained model's network weights and self energies (TorchANI
names ``H.0.weight`` ..., ``self_energies`` in MLatom's element order, ``elements``) to W.npz;
--pretrained starts from such weights instead of pre-training (one epoch of MLatom's training
creates the model file, then the given weights replace its networks and self energies);
--transfer-seeds runs the transfer step once per transfer seed T from the same pre-trained
model, seeded with S * 1000 + B + 100000 * T (T = 0 is the default seeding below), each run
recorded with its ``transfer_seed``; --no-scratch skips the scratch model.

INPUT.npz: ``species`` (A,) atomic numbers, ``coordinates`` (N, A, 3) Angstrom, ``low`` and
``high`` (N,) Hartree. Each step is called as MLatom's tutorial (bench/_mlatom_tutorial.py)
calls it:

* pre-training: one ``ml.models.ani`` trained on the low-level energies of all N geometries with
  MLatom's defaults (MLatom splits them 80/20 into training and validation itself);
* transfer, per budget B: (train, val) = ``protocol.pick(N, B, S)``; the pre-trained model file
  copied, ``fix_layers([[0, 6]])``, ``energy_shifter.self_energies = None`` (refitted on the
  training points), trained on the high-level energies of ``train`` with ``val`` as the
  validation set, learning rate 1e-4, ``reset_optimizer=True``;
* scratch, per budget B: a new ``ml.models.ani`` trained on the same points with MLatom's
  defaults (the tutorial's third model).

Every model predicts all N geometries. RMSE against ``high`` (pre-training: against ``low``) in
kcal/mol, over all N and over ``protocol.held_out(N, B, S)``.

Seeding: MLatom seeds nothing itself. random, numpy and torch are seeded with S before the
pre-training, and with S * 1000 + B before each budget's transfer (the scratch training follows
it in the same stream), so a budget's result does not depend on which other budgets one call
runs. torch runs on one thread.

Writes OUT.json ({"seed", "pretrain_seconds", "pretrain_rmse_vs_low_kcal", "runs": [...]}, plus
epochs and versions) and OUT.npz (``pretrained``, ``transfer_<B>``, ``scratch_<B>``: predicted
energies, Hartree). MLatom's model files live in a temporary folder that is removed afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("MLATOM_NO_VERSION_CHECK", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

# MLatom 3.25 + torch 2.13: ReduceLROnPlateau.is_better became _is_better (as the tutorial run).
_R = torch.optim.lr_scheduler.ReduceLROnPlateau
if not hasattr(_R, "is_better"):
    _R.is_better = _R._is_better
_LOG: list[int] = []  # id of the scheduler of each epoch (MLatom steps one per epoch)
_step = _R.step


def _logged_step(self, metric, *args, **kwargs):
    _LOG.append(id(self))
    return _step(self, metric, *args, **kwargs)


_R.step = _logged_step

import mlatom as ml  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent / "transfer_suite"))
import protocol  # noqa: E402

KCAL = 627.509474  # kcal/mol per Hartree


def seed_all(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def epochs_since(mark: int) -> int:
    """Epochs of the first scheduler stepped after ``mark`` (MLatom steps AdamW's, then SGD's)."""
    new = _LOG[mark:]
    return sum(1 for i in new if i == new[0]) if new else 0


def rmse_kcal(pred: np.ndarray, ref: np.ndarray, rows: np.ndarray | None = None) -> float:
    d = np.asarray(pred, float) - np.asarray(ref, float)
    if rows is not None:
        d = d[rows]
    return float(np.sqrt(np.mean(d**2)) * KCAL)


def weights(model_file: str) -> dict[str, np.ndarray]:
    """Network weights (TorchANI names) and self energies of an MLatom ANI model file."""
    d = torch.load(model_file, map_location="cpu", weights_only=False)
    out = {k: v.numpy() for k, v in d["nn"].items()}
    out["self_energies"] = np.asarray(d["energy_shifter"].self_energies, dtype=np.float64)
    out["elements"] = np.array(list(d["network"].keys()))
    return out


def write_weights(model_file: str, values: dict[str, np.ndarray]) -> None:
    """Put network weights and self energies into an existing MLatom model file."""
    d = torch.load(model_file, map_location="cpu", weights_only=False)
    if "elements" in values and list(values["elements"]) != list(d["network"].keys()):
        raise SystemExit(f"element order {list(values['elements'])} != MLatom's "
                         f"{list(d['network'].keys())}")
    for key, tensor in d["nn"].items():
        d["nn"][key] = torch.from_numpy(np.asarray(values[key])).to(tensor.dtype).reshape(
            tensor.shape)
    for symbol, net in d["network"].items():
        net.load_state_dict({k.split(".", 1)[1]: v for k, v in d["nn"].items()
                             if k.startswith(symbol + ".")})
    d["energy_shifter"].self_energies = torch.tensor(values["self_energies"], dtype=torch.float64)
    d["args"]["self_energies"] = d["energy_shifter"].self_energies
    torch.save(d, model_file)


def subset(mol_db, rows: np.ndarray):
    return ml.molecular_database([mol_db[int(i)] for i in rows])


def run_budget(args, budget: int, tseed: int, mol_db, sub, val_db, high: np.ndarray,
               held: np.ndarray, predictions: dict, result: dict) -> None:
    """The transfer step (and, for transfer seed 0 unless --no-scratch, the scratch model) at
    one budget from ANI-low.pt, seeded with S * 1000 + B + 100000 * T."""
    seed_all(args.seed * 1000 + budget + 100000 * tseed)
    tag = f"{budget}" if tseed == 0 else f"{budget}_t{tseed}"
    tl_file = f"ANI-TL-{tag}.pt"
    shutil.copy("ANI-low.pt", tl_file)
    tl = ml.models.ani(model_file=tl_file, verbose=False)
    tl.fix_layers([[0, 6]])
    tl.energy_shifter.self_energies = None
    mark, t0 = len(_LOG), time.perf_counter()
    tl.train(molecular_database=sub, validation_molecular_database=val_db,
             property_to_learn="high_energy", hyperparameters={"learning_rate": 0.0001},
             reset_optimizer=True)
    transfer_seconds = time.perf_counter() - t0
    transfer_epochs = epochs_since(mark)
    tl.predict(molecular_database=mol_db, property_to_predict=f"tl_{tag}")
    predictions[f"transfer_{tag}"] = mol_db.get_properties(f"tl_{tag}")
    run = {
        "budget": budget,
        "transfer_seed": tseed,
        "n_train": len(sub),
        "n_val": len(val_db),
        "transfer_rmse_all_kcal": rmse_kcal(predictions[f"transfer_{tag}"], high),
        "transfer_rmse_heldout_kcal": rmse_kcal(predictions[f"transfer_{tag}"], high, held),
        "transfer_seconds": transfer_seconds,
        "transfer_epochs": transfer_epochs,
    }
    line = (f"budget {budget} transfer seed {tseed}: transfer "
            f"{run['transfer_rmse_all_kcal']:.2f} kcal/mol ({transfer_seconds:.1f} s, "
            f"{transfer_epochs} epochs)")
    if tseed == args.transfer_seeds[0] and not args.no_scratch:
        scratch = ml.models.ani(model_file=f"ANI-scratch-{budget}.pt", verbose=False)
        mark, t0 = len(_LOG), time.perf_counter()
        scratch.train(molecular_database=sub, validation_molecular_database=val_db,
                      property_to_learn="high_energy")
        scratch_seconds = time.perf_counter() - t0
        scratch_epochs = epochs_since(mark)
        scratch.predict(molecular_database=mol_db, property_to_predict=f"scratch_{budget}")
        predictions[f"scratch_{budget}"] = mol_db.get_properties(f"scratch_{budget}")
        run.update({
            "scratch_rmse_all_kcal": rmse_kcal(predictions[f"scratch_{budget}"], high),
            "scratch_rmse_heldout_kcal": rmse_kcal(predictions[f"scratch_{budget}"], high, held),
            "scratch_seconds": scratch_seconds,
            "scratch_epochs": scratch_epochs,
        })
        line += (f", scratch {run['scratch_rmse_all_kcal']:.2f} ({scratch_seconds:.1f} s, "
                 f"{scratch_epochs} epochs)")
    result["runs"].append(run)
    print(line, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("input")
    parser.add_argument("out")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--budgets", type=int, nargs="+", default=list(protocol.BUDGETS))
    parser.add_argument("--save-pretrained", default=None)
    parser.add_argument("--pretrained", default=None)
    parser.add_argument("--transfer-seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--no-scratch", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    data = np.load(args.input)
    species = np.asarray(data["species"], dtype=int)
    xyz = np.asarray(data["coordinates"], dtype=float)
    low = np.asarray(data["low"], dtype=float)
    high = np.asarray(data["high"], dtype=float)
    n = len(xyz)
    out = Path(args.out).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    here = os.getcwd()
    work = tempfile.mkdtemp(prefix="mlatom_suite_")
    os.chdir(work)
    try:
        mol_db = ml.molecular_database.from_numpy(coordinates=xyz,
                                                  species=np.tile(species, (n, 1)))
        mol_db.add_scalar_properties(low, "low_energy")
        mol_db.add_scalar_properties(high, "high_energy")
        predictions: dict[str, np.ndarray] = {}

        seed_all(args.seed)
        hyper = {}
        if args.pretrained:  # the given networks' widths (MLatom's default: 160-128-96 each)
            given = np.load(os.path.join(here, args.pretrained))
            hyper["neurons"] = [[int(given[f"{e}.{k}.weight"].shape[0]) for k in (0, 2, 4)]
                                for e in given["elements"]]
        ani = ml.models.ani(model_file="ANI-low.pt", verbose=False, hyperparameters=hyper)
        mark, t0 = len(_LOG), time.perf_counter()
        if args.pretrained:  # one epoch creates the file, then the given weights replace it
            ani.train(molecular_database=mol_db, property_to_learn="low_energy",
                      hyperparameters={"max_epochs": 1})
            write_weights("ANI-low.pt", dict(np.load(os.path.join(here, args.pretrained))))
            ani = ml.models.ani(model_file="ANI-low.pt", verbose=False)
        else:
            ani.train(molecular_database=mol_db, property_to_learn="low_energy")
        if args.save_pretrained:
            np.savez(os.path.join(here, args.save_pretrained), **weights("ANI-low.pt"))
        pretrain_seconds = time.perf_counter() - t0
        pretrain_epochs = epochs_since(mark)
        ani.predict(molecular_database=mol_db, property_to_predict="pre_energy")
        predictions["pretrained"] = mol_db.get_properties("pre_energy")
        result = {
            "seed": args.seed,
            "n_geometries": n,
            "pretrain_seconds": pretrain_seconds,
            "pretrain_epochs": pretrain_epochs,
            "pretrain_rmse_vs_low_kcal": rmse_kcal(predictions["pretrained"], low),
            "pretrained_from": args.pretrained,
            "runs": [],
        }
        print(f"pre-trained: {pretrain_seconds:.1f} s, {pretrain_epochs} epochs, "
              f"{result['pretrain_rmse_vs_low_kcal']:.3f} kcal/mol vs low", flush=True)

        for budget in args.budgets:
            train, val = protocol.pick(n, budget, args.seed)
            held = protocol.held_out(n, budget, args.seed)
            sub, val_db = subset(mol_db, train), subset(mol_db, val)
            for tseed in args.transfer_seeds:
                run_budget(args, budget, tseed, mol_db, sub, val_db, high, held, predictions,
                           result)
    finally:
        os.chdir(here)
        shutil.rmtree(work, ignore_errors=True)

    result.update({"mlatom": ml.__version__ if hasattr(ml, "__version__") else "3.25.5",
                   "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
                   "seeding": "random/numpy/torch: S before pre-training, S*1000+B+100000*T per budget "
                               "and transfer seed T"})
    np.savez(out.with_suffix(".npz"), **predictions)
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=1) + "\n")
    tmp.replace(out)  # the JSON appears only when the run is complete


if __name__ == "__main__":
    main()
