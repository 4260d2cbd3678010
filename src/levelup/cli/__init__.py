"""The ``levelup`` command line: one module per subcommand, discovered from this package.

Each subcommand module defines ``add_parser(subparsers)`` (which registers its parser and sets
``func`` to a callable taking the parsed arguments and returning an exit code).
"""
