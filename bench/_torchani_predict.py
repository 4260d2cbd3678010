"""TorchANI 2.2.4 side of bench/bench_predict.py; runs inside bench/.mlatom-venv.

Usage: python _torchani_predict.py INPUT.npz OUTPUT.npz
INPUT holds the workloads and the levelup model's weights; OUTPUT gets the timings (least CPU
seconds of the repeats, one thread) and the energies, so that the bench can check both codes agree.
"""

from __future__ import annotations

import sys
import time

import numpy as np
import torch
import torchani


def build(data, prefix, symbols):
    names = ("EtaR", "ShfR", "EtaA", "Zeta", "ShfA", "ShfZ")
    consts = {k: torch.tensor(data[f"aev_{k}"], dtype=torch.float32) for k in names}
    aev = torchani.AEVComputer(float(data["aev_Rcr"]), float(data["aev_Rca"]), consts["EtaR"],
                               consts["ShfR"], consts["EtaA"], consts["Zeta"], consts["ShfA"],
                               consts["ShfZ"], len(symbols))
    nets = []
    for s in symbols:
        n_layers = int(data[f"{prefix}{s}_n"])
        layers = []
        for k in range(n_layers):
            w = torch.tensor(data[f"{prefix}{s}_w{k}"])
            lin = torch.nn.Linear(w.shape[1], w.shape[0])
            with torch.no_grad():
                lin.weight.copy_(w)
                lin.bias.copy_(torch.tensor(data[f"{prefix}{s}_b{k}"]))
            layers.append(lin)
            if k < n_layers - 1:
                layers.append(torch.nn.CELU(0.1))
        nets.append(torch.nn.Sequential(*layers))
    shifter = torchani.utils.EnergyShifter(torch.tensor(data[f"{prefix}self"]).tolist())
    return aev, torchani.ANIModel(nets), shifter


def run(aev, nets, shifters, species, xyz, forces, batch=1024):
    """Energies (mean over nets) for molecules all of one size, in batches of ``batch``."""
    out = []
    for s in range(0, len(species), batch):
        sp = torch.tensor(species[s:s + batch])
        c = torch.tensor(xyz[s:s + batch], dtype=torch.float32, requires_grad=forces)
        with torch.set_grad_enabled(forces):
            _, a = aev((sp, c))
            e = torch.stack([shift((sp, net((sp, a)).energies.double())).energies
                             for net, shift in zip(nets, shifters, strict=True)]).mean(0)
            if forces:
                (g,) = torch.autograd.grad(e.sum(), c)
        out.append(e.detach().numpy())
    return np.concatenate(out)


def main() -> None:
    torch.set_num_threads(1)
    data = np.load(sys.argv[1])
    repeats = int(data["repeats"])
    results = {}
    for work in [str(w) for w in data["workloads"]]:
        symbols = [str(s) for s in data[f"{work}_symbols"]]
        n_members = int(data[f"{work}_members"])
        built = [build(data, f"{work}_m{k}_", symbols) for k in range(n_members)]
        aev = built[0][0]
        nets = [b[1] for b in built]
        shifters = [b[2] for b in built]
        forces = bool(data[f"{work}_forces"])
        groups = [(data[f"{work}_species{g}"], data[f"{work}_xyz{g}"])
                  for g in range(int(data[f"{work}_groups"]))]
        best = float("inf")
        for _ in range(repeats):
            t = time.process_time()
            energies = [run(aev, nets, shifters, sp, xyz, forces) for sp, xyz in groups]
            best = min(best, time.process_time() - t)
        results[f"{work}_seconds"] = best
        results[f"{work}_energies"] = np.concatenate(energies)
    np.savez(sys.argv[2], **results)


if __name__ == "__main__":
    main()
