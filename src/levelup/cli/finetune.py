"""``levelup finetune MODEL DATABASE -o OUT --property NAME``: transfer a pre-trained model to a
new level of theory from a few labelled molecules.

By default it runs levelup's recipe (:class:`levelup.finetune.TransferRecipe`: self energies
refit, every layer fine-tuned while the pre-trained forces are kept on ``--anchors`` and the
correction to them is kept smooth, then an L-BFGS polish). ``--freeze``, ``--self-energies``
and the other flags change the recipe's fields one to one. The fine-tuned model is written to
OUT; MODEL is left as it is.
"""

from __future__ import annotations

import argparse

from ..errors import DataError
from ..finetune import TransferRecipe, finetune
from .common import check_number, input_file, output_file, read_database, read_model

EXAMPLE = """examples:
  levelup finetune ani-hf.pt cisd12.h5 -o ani-cisd.pt --property CISD/cc-pVDZ --anchors h2.h5
  levelup finetune ani-hf.pt few.h5 -o tl.pt --property CCSD(T)/cc-pVDZ --validation val.h5 \\
      --freeze 0 -1 --anchor-strength 0 --lr 1e-4"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("finetune", help="transfer a pre-trained model to a new level",
                       description=__doc__, epilog=EXAMPLE,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help="pre-trained levelup model file")
    p.add_argument("database", help="high-level training molecules (.h5 or any ASE file)")
    p.add_argument("-o", "--output", required=True, help="fine-tuned model file to write")
    p.add_argument("--property", required=True, help="high-level energy property (Hartree)")
    p.add_argument("--validation", help="validation molecules (picks the best epoch)")
    p.add_argument("--anchors", help="geometries whose pre-trained forces are kept where the new "
                   "data says nothing, typically the pre-training set (default: the new data)")
    defaults = TransferRecipe()
    p.add_argument("--freeze", type=int, nargs="*", default=list(defaults.frozen_layers),
                   metavar="LAYER", help="Linear layers kept as pre-trained (0 first, -1 output)")
    p.add_argument("--self-energies", choices=["refit", "atoms", "keep"],
                   default=defaults.self_energies, help="new self energies (default refit)")
    p.add_argument("--level", help="level of theory for --self-energies atoms")
    p.add_argument("--anchor-strength", type=float, default=defaults.anchor_strength,
                   help=f"ForceAnchor strength, Angstrom^2 ({defaults.anchor_strength}; 0: off)")
    p.add_argument("--smoothness", type=float, default=defaults.smoothness,
                   help=f"SmoothCorrection strength, Angstrom^4 ({defaults.smoothness}; 0: off)")
    p.add_argument("--polish-smoothness", type=float, default=defaults.polish_smoothness,
                   help=f"SmoothCorrection strength of the polish ({defaults.polish_smoothness})")
    p.add_argument("--smoothness-step", type=float, default=defaults.smoothness_step,
                   help=f"finite-difference step of SmoothCorrection, Angstrom "
                        f"({defaults.smoothness_step})")
    p.add_argument("--l2sp", type=float, default=defaults.l2sp, help="L2-SP strength (0)")
    p.add_argument("--lr", type=float, default=defaults.learning_rate,
                   help=f"learning rate ({defaults.learning_rate})")
    p.add_argument("--epochs", type=int, default=defaults.epochs,
                   help=f"epochs ({defaults.epochs})")
    p.add_argument("--polish-iterations", type=int, default=defaults.polish_iterations,
                   help=f"L-BFGS iterations after the epochs ({defaults.polish_iterations}; 0: off)")
    p.add_argument("--seed", type=int, default=defaults.seed, help="seed (0)")
    p.set_defaults(func=run)


def _check_flags(args: argparse.Namespace) -> None:
    for flag in ("anchor_strength", "smoothness", "polish_smoothness", "l2sp"):
        check_number(getattr(args, flag), "--" + flag.replace("_", "-"), minimum=0, example="0")
    check_number(args.smoothness_step, "--smoothness-step", above=0, example="0.01")
    check_number(args.lr, "--lr", above=0, example="1e-4")
    check_number(args.epochs, "--epochs", minimum=0, example="100")
    check_number(args.polish_iterations, "--polish-iterations", minimum=0, example="0")


def run(args: argparse.Namespace) -> int:
    _check_flags(args)
    inputs = [args.model, args.database, args.validation, args.anchors]
    for path, what in zip(inputs, ("model", "database", "--validation", "--anchors"), strict=True):
        if path is not None:
            input_file(path, what)
    output_file(args.output, inputs=inputs)
    model = read_model(args.model)
    train = read_database(args.database, "database")
    validation = read_database(args.validation, "--validation") if args.validation else None
    anchors = read_database(args.anchors, "--anchors") if args.anchors else None
    for db, where in ((train, args.database), (validation, args.validation)):
        if db is not None and args.property not in db.properties:
            held = ", ".join(repr(k) for k in db.properties) or "none"
            raise DataError(f"--property {args.property!r} is not a property of {where}; it "
                            f"has: {held}")
    recipe = TransferRecipe(
        frozen_layers=tuple(args.freeze), self_energies=args.self_energies, level=args.level,
        anchor_strength=args.anchor_strength, smoothness=args.smoothness,
        polish_smoothness=args.polish_smoothness, smoothness_step=args.smoothness_step,
        l2sp=args.l2sp, learning_rate=args.lr,
        epochs=args.epochs, polish_iterations=args.polish_iterations, seed=args.seed)
    tuned, history = finetune(model, train, validation, property=args.property, anchors=anchors,
                              recipe=recipe, progress=not args.quiet)
    tuned.save(args.output, metadata={"level": args.property, "fine_tuned_from": str(args.model),
                                      "recipe": {k: v for k, v in vars(recipe).items()}})
    histories = history if isinstance(history, list) else [history]  # one per ensemble member
    best = ", ".join(str(h.best_epoch) for h in histories)
    print(f"fine-tuned {args.model} on {len(train)} molecules ({args.property}), best epoch "
          f"{best} -> {args.output}")
    return 0
