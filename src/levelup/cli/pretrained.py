"""``levelup pretrained ani-1x``: convert a published ANI ensemble into a levelup model file.

The NeuroChem files come from the torchani 2.2.4 wheel, downloaded once with pip into levelup's
cache folder ($LEVELUP_CACHE_DIR or the user cache folder), or from a wheel or folder given with
--from (for machines without a package index).
"""

from __future__ import annotations

import argparse

from levelup.cli.common import output_file
from levelup.errors import LevelupError
from levelup.model.published.catalog import MODELS, ensemble_from_files, fetch, read_files

EXAMPLE = """examples:
  levelup pretrained ani-1x -o ani-1x.pt
  levelup pretrained ani-1x --from torchani-2.2.4-py3-none-any.whl -o ani-1x.pt
  levelup pretrained ani-1x --download-only"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``levelup pretrained`` on the CLI's subcommand parser."""
    p = sub.add_parser("pretrained", help="get a published ANI model (ANI-1x) as a levelup model file",
                       description=__doc__, epilog=EXAMPLE,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("name", choices=sorted(MODELS), help="the published model")
    p.add_argument("-o", "--output", metavar="PATH",
                   help="model file to write (default: <name>.pt in the current folder)")
    p.add_argument("--from", dest="source", metavar="PATH",
                   help="a torchani 2.2.4 wheel, an unpacked wheel or the ani-1x_8x folder, instead "
                        "of the download")
    p.add_argument("--download-only", action="store_true",
                   help="only put the wheel into levelup's cache folder and print its path")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Convert a published ANI ensemble (ANI-1x, fetched once into the cache) into a levelup model file."""
    progress = not getattr(args, "quiet", False)
    model = MODELS[args.name]
    if args.download_only:
        if args.source or args.output:
            raise LevelupError("--download-only takes neither --from nor --output")
        print(fetch(args.name, progress=progress))
        return 0
    output = args.output or f"{args.name}.pt"
    output_file(output, inputs=[args.source])
    files = read_files(args.name, args.source, progress=progress)
    ensemble = ensemble_from_files(files)
    ensemble.save(output, metadata={
        "name": model.name,
        "level": model.level,
        "reference": model.reference,
        "source": files.source,
        "converted_from": f"NeuroChem files of {model.requirement} ({model.folder})",
    })
    print(f"{output}: {model.name}, {len(ensemble)} members, elements "
          f"{' '.join(ensemble.symbols)}, trained on {model.level} ({model.reference})")
    return 0
