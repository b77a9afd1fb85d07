"""The ``actnet`` command line: thin Typer commands that parse, call one function and print with rich.

Commands come in families, a module each: ``prepare`` (videos -> shards), ``run`` (train, evaluate, predict,
export), ``label`` (suggest, pseudo-label), ``ops`` (inspect, doctor, demo) and ``bench`` (benchmark
all|prepare|loader); ``common`` holds the app, the consoles and the one-line error. A user error
(:class:`actnet.errors.ActnetError`) is one red line on stderr and exit status 2; work that started and failed
(:class:`actnet.errors.RunFailed`, a prepare whose rejected fraction exceeds ``--max-reject-fraction``) exits with
status 1 after writing everything.
"""

import logging
import sys
from typing import Annotated

import typer

from actnet import __version__
from actnet.cli.common import app, out

# isort: off
# Each module registers its commands on the app; --help lists them in this order, the order of the data flow.
from actnet.cli import prepare, run, label, ops, bench  # noqa: E402, F401
# isort: on

__all__ = ["app", "main"]


@app.callback(invoke_without_command=True)
def _version(version: Annotated[bool, typer.Option("--version", help="Print the version and exit.")] = False):
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if version:
        out.print(f"actnet {__version__}")
        raise typer.Exit()


def main() -> None:
    """Console-script entry point."""
    sys.exit(app())
