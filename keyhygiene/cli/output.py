"""`--output text|json` and `--query`: one spelling on every command that prints data.

As in the `aws` CLI: `--output json` prints JSON, and `--query` applies a
JMESPath expression to it (and implies JSON). The spellings of 0.2
(`--json`, and `audit --format json`) still work, hidden from the help.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, TextIO

from keyhygiene.core.errors import BadInput

OUTPUTS = ("text", "json")


def add_output_options(parser: argparse.ArgumentParser, *, what: str = "the result") -> None:
    group = parser.add_argument_group("output")
    group.add_argument(
        "--output",
        "-o",
        choices=OUTPUTS,
        default=None,
        help=f"print {what} as text (default) or JSON for scripts",
    )
    group.add_argument(
        "--query",
        metavar="JMESPATH",
        default=None,
        help="print only this part of the JSON output, as the aws CLI's --query "
        "(a JMESPath expression, e.g. 'users[].name'); implies --output json",
    )
    # The spellings of 0.2, kept working.
    group.add_argument(
        "--json", dest="output", action="store_const", const="json", help=argparse.SUPPRESS
    )


def add_format_alias(parser: argparse.ArgumentParser) -> None:
    """`audit --format json`, as 0.2 spelt it."""
    parser.add_argument("--format", dest="output", choices=OUTPUTS, help=argparse.SUPPRESS)


def wants_json(args: argparse.Namespace) -> bool:
    return getattr(args, "output", None) == "json" or bool(getattr(args, "query", None))


def check_query(args: argparse.Namespace) -> None:
    """Refuse a JMESPath expression that does not compile, before any AWS call."""
    query = getattr(args, "query", None)
    if not query:
        return
    import jmespath
    from jmespath.exceptions import JMESPathError

    try:
        jmespath.compile(query)
    except JMESPathError as exc:
        raise BadInput(
            f"--query {query!r} is not a JMESPath expression: {str(exc).splitlines()[0]}",
            hint="See https://jmespath.org for the syntax, e.g. 'users[].name'.",
        ) from None


def print_json(data: Any, args: argparse.Namespace, out: TextIO | None = None) -> None:
    """`data` as JSON, narrowed by --query when given."""
    query = getattr(args, "query", None)
    if query:
        import jmespath

        check_query(args)
        data = jmespath.search(query, data)
    print(json.dumps(data, indent=2, ensure_ascii=False), file=out or sys.stdout)
