"""What every command shares: the app, the two consoles, the one-line error, the parsers of small values."""

import functools
import re
import sys

import typer
from rich.console import Console
from rich.text import Text
from typer import core as _typer_core
from typer.core import TyperGroup

from actnet.errors import ActnetError
from actnet.progress import RichSink

# click's exceptions as this typer uses them: vendored as typer._click (0.2x on) or click itself (before)
click_errors = (getattr(_typer_core, "_click", None) or _typer_core.click).exceptions

console = Console(stderr=True)  # progress, warnings and errors
out = Console(width=None if sys.stdout.isatty() else 120)  # results; pipes and logs get whole tables, not 80 columns


class OneLineErrors(TyperGroup):
    """The root command group: a usage error (an unknown option, a value not among the choices, a missing
    argument) is one ``error:`` line naming the flag and the command's help, like every other actnet error."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click_errors.NoArgsIsHelpError:  # the help was printed
            sys.exit(2)
        except click_errors.UsageError as err:
            names, ctx = [], err.ctx
            while ctx is not None and ctx.parent is not None:  # the subcommands' names, whatever the program's
                names.append(ctx.info_name)
                ctx = ctx.parent
            where = " ".join(["actnet", *reversed(names)])
            error_line(f"{err.format_message()} (see {where} --help)")
            sys.exit(err.exit_code)
        except click_errors.ClickException as err:
            error_line(err.format_message())
            sys.exit(err.exit_code)
        except (typer.Abort, KeyboardInterrupt):
            error_line("interrupted")
            sys.exit(130)
        sys.exit(code if isinstance(code, int) else 0)


app = typer.Typer(
    cls=OneLineErrors,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    help="actnet: semi-supervised video action recognition (ActNetFormer) on WebDataset shards and DALI.",
)


def error_line(message: str) -> None:
    """``error: <message>`` in red on stderr, on one line whatever the terminal's width."""
    console.print(Text("error: ", style="bold red") + Text(message), soft_wrap=True)


def handle_errors(fn):
    """Turn an ActnetError into one clean line and its exit status (2 for bad input, 1 for a failed run)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except ActnetError as err:
            error_line(str(err))
            raise typer.Exit(err.exit_code) from None

    return wrapper


def sink(unit: str = "videos") -> RichSink:
    """Progress bars on stderr for library code that reports to a ProgressSink."""
    return RichSink(console, unit)


def parse_size(text: str, flag: str) -> int:
    """'256MB', '1GiB', '500k' or plain bytes."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b?)\s*", text.lower())
    if not m:
        raise ActnetError(f"{flag} {text!r}: expected a size such as 256MB, 1GiB or 1000000")
    factor = 1024 if m.group(3).startswith("i") else 1000
    return int(float(m.group(1)) * factor ** "_kmgt".index(m.group(2) or "_"))


def parse_part(text: str) -> tuple[int, int]:
    """``--part i/k``."""
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if not m:
        raise ActnetError(f"--part {text!r}: expected i/k, as in 2/8")
    return int(m.group(1)), int(m.group(2))


def parse_frame_size(text: str) -> tuple[int, int]:
    """``--size WIDTHxHEIGHT``."""
    m = re.fullmatch(r"(\d+)x(\d+)", text.strip())
    if not m:
        raise ActnetError(f"--size {text!r}: expected WIDTHxHEIGHT, as in 128x96")
    return int(m.group(1)), int(m.group(2))
