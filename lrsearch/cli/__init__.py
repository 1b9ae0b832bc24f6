"""The ``lrsearch`` command: one module per subcommand; expected errors end as one line on stderr.

Exit codes: 0 done, 1 runtime failure, 2 bad input, 130 interrupted. ``--debug`` shows tracebacks.
"""

from __future__ import annotations

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


@click.group(no_args_is_help=True, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="lrsearch")
@click.option("--debug", is_flag=True, help="Show tracebacks on errors.")
def cli(debug: bool) -> None:
    """Learning-rate, momentum, decay, schedule and warmup search on Optuna."""


def _register_commands(debug: bool) -> None:
    """Import the commands (torch, optuna: seconds) inside main's error handling."""
    import optuna

    from lrsearch.cli import (
        bench,
        dashboard,
        doctor,
        export,
        lr_find,
        proxy,
        reap,
        report,
        run,
        schedule,
        studies,
        train,
        trainers,
    )

    # lrsearch reports progress itself; Optuna's per-trial INFO lines would drown it.
    optuna.logging.set_verbosity(optuna.logging.DEBUG if debug else optuna.logging.WARNING)
    for module in (
        run,
        studies,
        trainers,
        report,
        dashboard,
        export,
        reap,
        proxy,
        lr_find,
        train,
        schedule,
        bench,
        doctor,
    ):
        cli.add_command(module.command)


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
            _register_commands(debug)
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
    sys.exit(main())
