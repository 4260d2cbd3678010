"""``levelup export MODEL -o MODEL.ts``: a model file as TorchScript, for programs that have
PyTorch but not levelup (C++ through libtorch, other simulation codes).

The exported module maps (atomic numbers (atoms,) or (molecules, atoms) with 0 padding,
coordinates in Angstrom) to (energies in Hartree, forces in Hartree/Angstrom); an ensemble is
exported as the mean of its members.
"""

from __future__ import annotations

import argparse

from levelup.cli.common import input_file, output_file, read_model
from levelup.model.export import export_torchscript, read_export_info
from levelup.model.files import load_metadata

EXAMPLE = """example:
  levelup export h2.pt -o h2.ts
  python -c 'import torch; m = torch.jit.load("h2.ts");
             print(m(torch.tensor([1, 1]), torch.tensor([[0., 0, 0], [0, 0, 0.74]])))'"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``levelup export`` on the CLI's subcommand parser."""
    p = sub.add_parser("export", help="write a model file as TorchScript (runs without levelup)",
                       description=__doc__, epilog=EXAMPLE,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help="a levelup model file (model.save / levelup train)")
    p.add_argument("-o", "--output", required=True, metavar="PATH",
                   help="TorchScript file to write (e.g. model.ts)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Export a model file as TorchScript (energies and forces from atomic numbers and coordinates)."""
    input_file(args.model, "model")
    output_file(args.output, inputs=[args.model])
    model = read_model(args.model)
    metadata = {"source": str(args.model), "model_metadata": load_metadata(args.model)}
    export_torchscript(model, args.output, metadata=metadata)
    info = read_export_info(args.output)
    print(f"{args.output}: TorchScript {info['kind']} ({info['members']} member(s)), elements "
          f"{' '.join(info['elements'])}; returns energies (Hartree) and forces "
          f"(Hartree/Angstrom); load with torch.jit.load")
    return 0
