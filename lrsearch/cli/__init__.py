"""The ``lrsearch`` command: one module per subcommand; expected errors end as one line on stderr.

Exit codes: 0 done, 1 runtime failure, 2 bad input, 130 interrupted. ``--debug`` shows tracebacks.
"""

from __future__ import annotations

import gc
import os
import socket
import sys
import traceback
from collections.abc import Sequence

import click

from lrsearch import __version__
from lrsearch.errors import ConfigError, RuntimeFailure
from lrsearch.interrupts import interrupts
from lrsearch.storage.urls import redact

__all__ = ["LOOPBACK", "check_free", "cli", "entry_point", "main"]

#: Addresses that only this machine reaches: a server bound elsewhere warns that it has no authentication.
LOOPBACK = ("127.0.0.1", "localhost", "::1")


def check_free(host: str, port: int, what: str) -> None:
    """Fail as one line before a server starts, where it would fail with its own lines and a traceback:
    the address taken, or one this machine does not have."""
    try:
        with socket.create_server((host, port)):
            pass
    except (OSError, UnicodeError) as exc:  # UnicodeError: a host name IDNA cannot encode
        raise RuntimeFailure(f"cannot serve {what} on {host}:{port}: {getattr(exc, 'strerror', None) or exc}") from None


#: The subcommands: the module of each (``command`` in it) and the line ``lrsearch --help`` lists it with.
#: A command's module is imported only when it runs (or shows its own help): torch and Optuna take seconds.
COMMANDS = {
    "run": ("run", "Answer a study's question: search, repeat the best, compare."),
    "studies": ("studies", "List the known studies and their questions."),
    "trainers": ("trainers", "List the bundled trainers and the installed plug-ins."),
    "report": ("report", "A study's comparison: best per group, repeats' mean and 95% CI."),
    "dashboard": ("dashboard", "Serve optuna-dashboard: the studies, their notes and charts."),
    "export": ("export", "Write a study's trials table as CSV, Parquet or JSON."),
    "reap": ("reap", "Fail running trials whose worker is gone and re-enqueue them."),
    "proxy": ("proxy", "Serve the study database to many workers (grpc://HOST:PORT)."),
    "lr-find": ("lr_find", "The learning-rate range test: raise the rate, watch the loss."),
    "train": ("train", "Train one configuration and report its epochs."),
    "schedule": ("schedule", "Print a schedule's learning rate for each step as CSV."),
    "bench": ("bench", "The population engine against the plain loop, end to end."),
    "doctor": ("doctor", "Check that this device trains populations right and fast."),
}


class _Commands(click.Group):
    """The subcommands of ``COMMANDS``, each imported when asked for (click's documented lazy group)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        import importlib

        import optuna

        module = importlib.import_module(f"lrsearch.cli.{COMMANDS[cmd_name][0]}")
        # lrsearch reports progress itself; Optuna's per-trial INFO lines would drown it.
        debug = ctx.find_root().params.get("debug", False)
        optuna.logging.set_verbosity(optuna.logging.DEBUG if debug else optuna.logging.WARNING)
        return module.command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Commands"):
            formatter.write_dl([(name, COMMANDS[name][1]) for name in self.list_commands(ctx)])


@click.group(cls=_Commands, no_args_is_help=True, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="lrsearch")
@click.option("--debug", is_flag=True, help="Show tracebacks on errors.")
def cli(debug: bool) -> None:
    """Learning-rate, momentum, decay, schedule and warmup search on Optuna."""


def _import_command(args: Sequence[str]) -> None:
    """Import the module of the command ``args`` name (the first of them that is one), if any."""
    name = next((arg for arg in args if arg in COMMANDS), None)
    if name is not None:
        _Commands().get_command(click.Context(cli), name)


def _storage_urls(args: Sequence[str]) -> list[str]:
    """The storage URLs this command line may hold: ``--storage``'s values (also misplaced) and
    ``LRSEARCH_STORAGE``."""
    urls = [os.environ.get("LRSEARCH_STORAGE", "")]
    for i, arg in enumerate(args):
        if arg == "--storage" and i + 1 < len(args):
            urls.append(args[i + 1])
        elif arg.startswith("--storage="):
            urls.append(arg.partition("=")[2])
    return [url for url in urls if url]


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    # Known before parsing, so that even a parse error can show its traceback.
    debug = "--debug" in args
    urls = _storage_urls(args)

    def _fail(message: str, code: int) -> int:
        # Every message already shows URLs masked; this is the last line of defence for their passwords.
        click.echo(f"lrsearch: error: {redact(' '.join(message.split()), urls)}", err=True)
        return code

    try:
        with interrupts() as started:
            _import_command(args)  # its imports take seconds: a Ctrl-C there ends at once
            started()
            result = cli.main(args, prog_name="lrsearch", standalone_mode=False)
        return result if isinstance(result, int) else 0
    except click.exceptions.NoArgsIsHelpError as exc:
        click.echo(exc.format_message())
        return 0
    except (click.Abort, KeyboardInterrupt):
        click.echo("lrsearch: interrupted", err=True)
        return 130
    except click.UsageError as exc:
        if debug:
            traceback.print_exc()
        return _fail(exc.format_message(), 2)
    except (ConfigError, RuntimeFailure) as exc:
        if debug:
            traceback.print_exc()
        return _fail(str(exc), exc.exit_code)
    except click.ClickException as exc:
        return _fail(exc.format_message(), exc.exit_code)
    except Exception as exc:  # noqa: BLE001 - the last line of defence: one line, never a traceback
        if debug:
            traceback.print_exc()
            return 1
        return _fail(f"unexpected {type(exc).__name__}: {exc} (run with --debug for the traceback)", 1)


def entry_point() -> None:
    """Console-script entry point."""
    code = main()
    # The interpreter's last collections at exit walk every object torch, SciPy and scikit-learn made (most of
    # a second after `lrsearch run`); frozen, they are left to the exit, which frees them all the same.
    gc.freeze()
    sys.exit(code)
