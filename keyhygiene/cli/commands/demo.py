"""`keyhygiene demo serve`: the demo account's moto server in the foreground."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def add_parser(subparsers: Any, parents: list[argparse.ArgumentParser]) -> None:
    demo = subparsers.add_parser("demo", help="the built-in demo account", parents=parents)
    actions = demo.add_subparsers(dest="demo_command", metavar="ACTION", required=True)
    serve = actions.add_parser(
        "serve",
        help="run the demo's moto server in the foreground and print export lines",
        description=(
            "Run a moto server on 127.0.0.1 seeded with the demo account, write its "
            "credentials and config files into DIR, and print the export lines that point "
            "`aws` and `keyhygiene` in another terminal at it. Ctrl-C stops it."
        ),
    )
    serve.add_argument(
        "--port", type=int, default=0, help="port on 127.0.0.1 (default: a free one)"
    )
    serve.add_argument(
        "--dir", type=Path, default=None, help="sandbox folder (default: a new temp folder)"
    )
    serve.add_argument("--machine", action="store_true", help=argparse.SUPPRESS)
    serve.set_defaults(handler=_serve)


def _serve(args: argparse.Namespace) -> int:
    from keyhygiene.demo.server import serve_forever

    return serve_forever(args.port, args.dir, machine=args.machine)
