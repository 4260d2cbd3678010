"""TorchANI 2.2.4 side of bench/bench_scale.py: TorchANI's own training example, timed.

Runs inside bench/.mlatom-venv (torchani 2.2.4), never with levelup's environment.
Usage: python _torchani_train.py DATA.npz AEV.npz OUTPUT.json --batch B --epochs E

The loop is examples/nnp_training.py of torchani 2.2.4 with its settings: AEVComputer + ANIModel
(H 160-128-96, C 144-112-96, N and O 128-112-96, CELU 0.1, Kaiming normal weights with a=1,
zero biases), AdamW on the weights (decay 1e-5 / 1e-6 on the 2nd / 3rd layer, torch's default
elsewhere), SGD on the biases, both at 1e-3, ReduceLROnPlateau (0.5, patience 100, threshold 0)
on the validation RMSE computed before every epoch, the loss mean((E - E_ref)^2 / sqrt(atoms)).
The data path differs only in where it comes from: instead of ``torchani.data.load(h5)`` the
arrays of DATA.npz (self energies already known, subtracted as ``subtract_self_energies`` does),
shuffled once, cut into batches, each padded to its largest molecule and cached, as
``.shuffle().collate(batch).cache()`` makes them; preparing them is not timed (the example does
it before its loop). Not done: tensorboard, tqdm, writing checkpoint files.

Writes the CPU seconds and wall seconds of the epochs (validation included) to OUTPUT.json.
"""

from __future__ import annotations

import argparse
import json
import math
import time

import numpy as np
import torch
import torchani


def batches(species, xyz, energies, rows, size, seed):
    """The example's cached collated batches: (species indices, coordinates, energies)."""
    rows = rows[np.random.default_rng(seed).permutation(len(rows))]
    out = []
    for start in range(0, len(rows), size):
        idx = rows[start:start + size]
        width = int((species[idx] >= 0).sum(1).max())
        out.append((torch.from_numpy(species[idx, :width]),
                    torch.from_numpy(xyz[idx, :width]).float(),
                    torch.from_numpy(energies[idx])))
    return out


def network(aev_dim, widths):
    layers = []
    for w_in, w_out in zip((aev_dim, *widths[:-1]), widths, strict=True):
        layers += [torch.nn.Linear(w_in, w_out), torch.nn.CELU(0.1)]
    return torch.nn.Sequential(*layers, torch.nn.Linear(widths[-1], 1))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("data")
    parser.add_argument("aev")
    parser.add_argument("output")
    parser.add_argument("--batch", type=int, default=2560)
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    data, c = np.load(args.data), np.load(args.aev)
    consts = {k: torch.tensor(c[k], dtype=torch.float32) for k in
              ("EtaR", "ShfR", "EtaA", "Zeta", "ShfA", "ShfZ")}
    aev_computer = torchani.AEVComputer(float(c["Rcr"]), float(c["Rca"]), consts["EtaR"],
                                        consts["ShfR"], consts["EtaA"], consts["Zeta"],
                                        consts["ShfA"], consts["ShfZ"], 4)
    # species_to_indices and subtract_self_energies, as torchani.data does them
    table = np.full(9, -1)
    table[[1, 6, 7, 8]] = np.arange(4)
    species = table[data["species"]]
    energies = data["energies"] - np.where(species >= 0, data["self_energies"][species], 0).sum(1)
    training = batches(species, data["coordinates"], energies, data["train"], args.batch, 0)
    validation = batches(species, data["coordinates"], energies, data["val"], args.batch, 1)

    nets = [network(aev_computer.aev_length, w) for w in
            ((160, 128, 96), (144, 112, 96), (128, 112, 96), (128, 112, 96))]
    nn = torchani.ANIModel(nets)

    def init_params(m):
        if isinstance(m, torch.nn.Linear):
            torch.nn.init.kaiming_normal_(m.weight, a=1.0)
            torch.nn.init.zeros_(m.bias)

    nn.apply(init_params)
    model = torchani.nn.Sequential(aev_computer, nn)
    decays = (None, 1e-5, 1e-6, None)
    adamw = torch.optim.AdamW([{"params": [net[2 * k].weight]} if wd is None else
                               {"params": [net[2 * k].weight], "weight_decay": wd}
                               for net in nets for k, wd in enumerate(decays)])
    sgd = torch.optim.SGD([{"params": [net[2 * k].bias]} for net in nets for k in range(4)],
                          lr=1e-3)
    adamw_scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(adamw, factor=0.5, patience=100,
                                                                 threshold=0)
    sgd_scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(sgd, factor=0.5, patience=100,
                                                               threshold=0)
    mse_sum = torch.nn.MSELoss(reduction="sum")
    mse = torch.nn.MSELoss(reduction="none")

    def validate():
        total_mse, count = 0.0, 0
        model.train(False)
        with torch.no_grad():
            for sp, xyz, true_energies in validation:
                _, predicted_energies = model((sp, xyz))
                total_mse += mse_sum(predicted_energies, true_energies.float()).item()
                count += predicted_energies.shape[0]
        model.train(True)
        return torchani.units.hartree2kcalmol(math.sqrt(total_mse / count))

    c0, t0 = time.process_time(), time.perf_counter()
    rmse = math.nan
    for _ in range(args.epochs):
        rmse = validate()
        if adamw.param_groups[0]["lr"] < 1.0e-5:
            break
        adamw_scheduler.step(rmse)
        sgd_scheduler.step(rmse)
        for sp, xyz, true_energies in training:
            true_energies = true_energies.float()
            num_atoms = (sp >= 0).sum(dim=1, dtype=true_energies.dtype)
            _, predicted_energies = model((sp, xyz))
            loss = (mse(predicted_energies, true_energies) / num_atoms.sqrt()).mean()
            adamw.zero_grad()
            sgd.zero_grad()
            loss.backward()
            adamw.step()
            sgd.step()
    cpu, wall = time.process_time() - c0, time.perf_counter() - t0
    with open(args.output, "w") as f:
        json.dump({"epochs": args.epochs, "cpu_s": cpu, "wall_s": wall,
                   "train_molecules": int(len(data["train"])), "val_rmse": rmse,
                   "torchani": torchani.__version__, "torch": torch.__version__}, f)


if __name__ == "__main__":
    main()
