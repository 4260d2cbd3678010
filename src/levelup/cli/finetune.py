"""``levelup finetune MODEL DATABASE -o OUT --property NAME``: transfer a pre-trained model to a
new level of theory from a few labelled molecules.

By default it runs levelup's linear recipe (:class:`levelup.transfer.linear.LinearRecipe`): the
output layers refitted by one linear solve, with the strengths of a force anchor on
``--anchors``, a smoothness prior and a ridge chosen by k-fold cross-validation over the
molecules of DATABASE (and ``--validation``); it prints what it chose and the cross-validated
error. ``--forces PROP`` fits high-level forces too. ``--recipe anchored|force-anchor|plain|
mlatom`` runs a gradient recipe (:class:`levelup.transfer.gradient.TransferRecipe`) instead, whose fields
``--freeze``, ``--lr`` and the other flags change one to one. ``--recipe gp --forces PROP``
adds a Gaussian-process correction fitted to the energies and forces of one molecule's points
(:mod:`levelup.transfer.gpcorrection`). The transferred model is written to OUT; MODEL is left
as it is.
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

from levelup.cli.common import check_number, input_file, output_file, read_database, read_model
from levelup.errors import ConfigError, DataError
from levelup.transfer.gradient import TransferRecipe
from levelup.transfer.linear import LinearRecipe
from levelup.transfer.recipe import RECIPES, finetune, recipe

EXAMPLE = """examples:
  levelup finetune ani-hf.pt cisd12.h5 -o ani-cisd.pt --property CISD/cc-pVDZ --anchors h2.h5
  levelup finetune ani-hf.pt few.h5 -o tl.pt --property CCSD(T)/cc-pVDZ \\
      --forces "forces/CCSD(T)/cc-pVDZ" --anchors pretraining.h5
  levelup finetune ani-hf.pt few.h5 -o tl.pt --property CCSD(T)/cc-pVDZ --validation val.h5 \\
      --recipe mlatom --lr 1e-4"""

#: flags of the gradient recipes (TransferRecipe field, flag)
GRADIENT_FLAGS = {"frozen_layers": "--freeze", "self_energies": "--self-energies",
                  "level": "--level", "anchor_strength": "--anchor-strength",
                  "smoothness": "--smoothness", "polish_smoothness": "--polish-smoothness",
                  "smoothness_step": "--smoothness-step", "l2sp": "--l2sp",
                  "learning_rate": "--lr", "epochs": "--epochs",
                  "polish_iterations": "--polish-iterations"}


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``levelup finetune`` on the CLI's subcommand parser."""
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
    p.add_argument("--recipe", choices=list(RECIPES), default="linear",
                   help="transfer recipe (default linear: output layers by one solve, strengths "
                        "by cross-validation)")
    p.add_argument("--forces", metavar="PROP", help="per-atom property of high-level forces "
                   "(Hartree/Angstrom) to fit too (linear recipe; required by gp)")
    p.add_argument("--folds", type=int, help=f"folds of the cross-validation (linear; "
                   f"{LinearRecipe().folds})")
    g = p.add_argument_group("gradient recipes (--recipe anchored, force-anchor, plain, mlatom)")
    defaults = TransferRecipe()
    g.add_argument("--freeze", type=int, nargs="*", dest="frozen_layers", metavar="LAYER",
                   help="Linear layers kept as pre-trained (0 first, -1 output)")
    g.add_argument("--self-energies", choices=["refit", "atoms", "keep"],
                   help="new self energies (default refit)")
    g.add_argument("--level", help="level of theory for --self-energies atoms")
    g.add_argument("--anchor-strength", type=float,
                   help=f"ForceAnchor strength, Angstrom^2 ({defaults.anchor_strength}; 0: off)")
    g.add_argument("--smoothness", type=float,
                   help=f"SmoothCorrection strength, Angstrom^4 ({defaults.smoothness}; 0: off)")
    g.add_argument("--polish-smoothness", type=float,
                   help=f"SmoothCorrection strength of the polish ({defaults.polish_smoothness})")
    g.add_argument("--smoothness-step", type=float,
                   help=f"finite-difference step of SmoothCorrection, Angstrom "
                        f"({defaults.smoothness_step})")
    g.add_argument("--l2sp", type=float, help="L2-SP strength (0)")
    g.add_argument("--lr", type=float, dest="learning_rate",
                   help=f"learning rate ({defaults.learning_rate})")
    g.add_argument("--epochs", type=int, help=f"epochs ({defaults.epochs})")
    g.add_argument("--polish-iterations", type=int,
                   help=f"L-BFGS iterations after the epochs ({defaults.polish_iterations}; 0: off)")
    p.add_argument("--seed", type=int, default=0, help="seed (0)")
    p.set_defaults(func=run)


def _check_flags(args: argparse.Namespace) -> None:
    for flag in ("anchor_strength", "smoothness", "polish_smoothness", "l2sp"):
        if getattr(args, flag) is not None:
            check_number(getattr(args, flag), "--" + flag.replace("_", "-"), minimum=0,
                         example="0")
    for value, flag, example in ((args.smoothness_step, "--smoothness-step", "0.01"),
                                 (args.learning_rate, "--lr", "1e-4")):
        if value is not None:
            check_number(value, flag, above=0, example=example)
    for value, flag in ((args.epochs, "--epochs"), (args.polish_iterations,
                                                    "--polish-iterations")):
        if value is not None:
            check_number(value, flag, minimum=0, example="100")
    if args.folds is not None:
        check_number(args.folds, "--folds", minimum=2, example="5")
    given = [flag for field, flag in GRADIENT_FLAGS.items() if getattr(args, field) is not None]
    if args.recipe == "linear" and given:
        raise ConfigError(f"{', '.join(given)} set a gradient recipe's fields, but --recipe is "
                          f"linear (the default); add --recipe anchored (or plain, mlatom, "
                          f"force-anchor), or drop them")
    if args.recipe not in ("linear", "gp") and args.forces:
        raise ConfigError(f"--forces needs --recipe linear or gp; --recipe {args.recipe} fits "
                          f"energies only")
    if args.recipe == "gp" and (not args.forces or given):
        raise ConfigError("--recipe gp fits the high-level forces too: give --forces PROP (e.g. "
                          "--forces 'forces/CCSD(T)/cc-pVDZ') and no gradient-recipe flags")
    if args.recipe not in ("linear", "auto") and args.folds is not None:
        raise ConfigError(f"--folds needs --recipe linear or auto; --recipe {args.recipe} does "
                          f"not cross-validate")
    if args.recipe == "auto" and given:
        raise ConfigError(f"{', '.join(given)} set a gradient recipe's fields; --recipe auto "
                          f"compares the linear and plain recipes at their defaults")


def _recipe(args: argparse.Namespace) -> Any:
    if args.recipe == "gp":
        return recipe("gp", seed=args.seed)
    if args.recipe in ("linear", "auto"):
        changes = {} if args.folds is None else {"folds": args.folds}
        return recipe(args.recipe, seed=args.seed, **changes)
    changes = {field: getattr(args, field) for field in GRADIENT_FLAGS
               if getattr(args, field) is not None}
    if "frozen_layers" in changes:
        changes["frozen_layers"] = tuple(changes["frozen_layers"])
    return recipe(args.recipe, seed=args.seed, **changes)


def run(args: argparse.Namespace) -> int:
    """Fine-tune a pre-trained model on high-level points with the chosen recipe; write the model."""
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
    chosen = _recipe(args)
    if args.forces:
        for db, where in ((train, args.database), (validation, args.validation)):
            if db is not None and args.forces not in db.properties:
                raise DataError(f"--forces {args.forces!r} is not a property of {where}")
    tuned, record = finetune(model, train, validation, property=args.property, anchors=anchors,
                             recipe=chosen, forces=args.forces, progress=not args.quiet)
    tuned.save(args.output, metadata={"level": args.property, "fine_tuned_from": str(args.model),
                                      "recipe": {"name": args.recipe,
                                                 **dataclasses.asdict(chosen)}})
    records = record if isinstance(record, list) else [record]  # one per ensemble member
    if hasattr(records[0], "summary"):
        how = "; ".join(r.summary() for r in records)
    else:
        how = "best epoch " + ", ".join(str(h.best_epoch) for h in records)
    print(f"fine-tuned {args.model} on {len(train)} molecules ({args.property}, recipe "
          f"{args.recipe}): {how} -> {args.output}")
    return 0
