"""Ablations of levelup's compat transfer step (compat-parity): the transfer step of
bench/bench_compat_parity.py from a fixed pre-trained model (MLatom's or levelup's, the npz
weights that script wrote), with one MLatom behaviour switched on at a time.

Variants (comma-separated to combine):

* ``base``: ``compat_transfer`` as in bench/bench_transfer_suite.py;
* ``sae``: self energies as MLatom resets them (``energy_shifter.self_energies = None``:
  TorchANI's EnergyShifter fits them afresh to the high-level energies of the training points,
  least squares, minimum norm; levelup's ``refit_self_energies`` fits a correction to the
  residual of the pre-trained networks instead, so the model starts without offset);
* ``eps``: Adam's epsilon acting on the loss in Hartree^2 as in MLatom (levelup's loss is in
  (kcal/mol)^2: epsilon 1e-8 * 627.5^2);

Starts: ``mlatom`` and ``levelup`` (the weights bench/bench_compat_parity.py saved) and
``levelup160`` (``--pretrain-160``: levelup's compat pre-training, ``TrainConfig.mlatom`` with
``torchani_groups``, but with MLatom's default networks, 160-128-96 for every element, instead
of the ANI-1x widths per element).

    .venv/bin/python bench/parity_ablate.py --systems water --seeds 0 --start mlatom levelup
        --variants base sae eps sae,eps
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE / "transfer_suite"))

from bench_compat_parity import WORK, from_torchani, rmse  # noqa: E402
from bench_transfer_suite import load  # noqa: E402
from protocol import held_out, pick  # noqa: E402

import levelup  # noqa: E402

OUT = HERE / "transfer_suite" / "results" / "parity" / "ablations.jsonl"


def transfer(pre, train, val, high: str, seed: int, variant: set[str]):
    from levelup.model.selfenergies import fit_self_energies
    from levelup.train.loop import torchani_groups
    from levelup.transfer.selfenergies import refit_self_energies, set_self_energies
    from levelup.transfer.surgery import freeze

    if "eps" in variant:
        raise SystemExit("the eps ablation patched levelup's hand-written FlatAdamW, which torch's "
                         "AdamW replaced at 19bf446; run it at commit b52adbb")
    model = copy.deepcopy(pre)
    freeze(model, [0, -1])
    if "sae" in variant:
        set_self_energies(model, fit_self_energies(train.species, train.get(high),
                                                   model.elements))
    else:
        refit_self_energies(model, train, high)
    history = levelup.fit(model, train, val, property=high, progress=False,
                          config=levelup.TrainConfig.mlatom(learning_rate=1e-4, seed=seed),
                          param_groups=torchani_groups(model))
    return model, history


def pretrain_160(name: str, seed: int, init: str = "") -> None:
    """levelup's compat pre-training with MLatom's default widths (160-128-96 everywhere);
    ``init="torch"``: the networks initialised as MLatom 3.25 leaves a new model, torch's
    ``nn.Linear`` default (``reset_parameters``: Kaiming-uniform weights a=sqrt(5), uniform
    biases up to 1/sqrt(fan_in)), drawn from torch's global generator seeded with ``seed``;
    ``init="torch-1x"``: that initialisation with levelup's ANI-1x widths; ``"normal-ubias"``:
    levelup's Kaiming-normal weights with torch's uniform biases; ``"uniform-zbias"``: torch's
    uniform weights with zero biases (both 160-128-96)."""
    from bench_compat_parity import to_torchani

    from levelup.train.loop import torchani_groups

    tag = {"": "levelup160", "torch": "levelup160torch", "torch-1x": "levelup1xtorch",
           "normal-ubias": "levelup160nu", "uniform-zbias": "levelup160uz"}[init]
    path = WORK / f"{name}_seed{seed}_{tag}.npz"
    if path.exists():
        return
    db, low, _ = load(name)
    hidden = None if init == "torch-1x" else (160, 128, 96)
    model = levelup.ANIModel(sorted(set(db.elements)), hidden=hidden, seed=seed)
    if init:
        torch.manual_seed(seed)
        for net in model.networks.values():
            for layer in net:
                if isinstance(layer, torch.nn.Linear):
                    w = layer.weight.detach().clone()
                    layer.reset_parameters()
                    with torch.no_grad():
                        if init == "normal-ubias":  # levelup's weights, torch's biases
                            layer.weight.copy_(w)
                        elif init == "uniform-zbias":  # torch's weights, zero biases
                            layer.bias.zero_()
    t0 = time.perf_counter()
    hist = levelup.fit(model, db, property=low, config=levelup.TrainConfig.mlatom(seed=seed),
                       param_groups=torchani_groups(model), progress=False)
    np.savez(path, **to_torchani(model))
    print(f"{name} s{seed}: pre-trained {tag} in {time.perf_counter() - t0:.0f} s, "
          f"{len(hist.epoch)} epochs, {rmse(model.predict(db).energies, db.get(low)):.3f} "
          "kcal/mol vs low", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--systems", nargs="+", default=["water"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--start", nargs="+", default=["mlatom", "levelup"])
    parser.add_argument("--variants", nargs="+", default=["base", "sae", "eps"])
    parser.add_argument("--transfer-seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--budget", type=int, default=16)
    parser.add_argument("--pretrain-160", action="store_true")
    parser.add_argument("--pretrain-init", default=None, choices=["", "torch", "torch-1x", "normal-ubias",
                                                          "uniform-zbias"])
    args = parser.parse_args()
    torch.set_num_threads(1)
    import warnings

    warnings.simplefilter("ignore")
    if args.pretrain_160 or args.pretrain_init is not None:
        for seed in args.seeds:
            for name in args.systems:
                pretrain_160(name, seed, args.pretrain_init or "")
    for name in args.systems:
        db, _, high = load(name)
        ref = np.asarray(db.get(high))
        for seed in args.seeds:
            train_i, val_i = pick(len(db), args.budget, seed)
            unseen = held_out(len(db), args.budget, seed)
            for start in args.start:
                path = WORK / f"{name}_seed{seed}_{start}.npz"
                if not path.exists():
                    print(f"{path} missing")
                    continue
                pre = from_torchani(path)
                for v in args.variants:
                    variant = set(v.split(","))
                    vals, epochs = [], []
                    for t in args.transfer_seeds:
                        t0 = time.perf_counter()
                        model, hist = transfer(pre, db[train_i], db[val_i], high,
                                               seed + 1000 * t, variant)
                        pred = model.predict(db).energies
                        rec = {"system": name, "seed": seed, "start": start, "variant": v,
                               "transfer_seed": t, "rmse_all": rmse(pred, ref),
                               "rmse_heldout": rmse(pred, ref, unseen),
                               "epochs": len(hist.epoch), "best_epoch": hist.best_epoch,
                               "seconds": time.perf_counter() - t0}
                        with open(OUT, "a") as fh:
                            fh.write(json.dumps(rec) + "\n")
                        vals.append(rec["rmse_all"])
                        epochs.append(rec["epochs"])
                    print(f"{name} s{seed} from {start} [{v}]: "
                          + ", ".join(f"{x:.2f}" for x in vals)
                          + f" (epochs {epochs})", flush=True)


if __name__ == "__main__":
    main()
