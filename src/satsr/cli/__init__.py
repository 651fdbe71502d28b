"""The `satsr` command. Every subcommand calls the same library function as its DVC stage.

``parser`` builds the arguments and help, ``commands`` holds one ``cmd_*`` function per subcommand; this
module runs one of them and turns user-facing errors into a one-line message and an exit code."""

from __future__ import annotations

import errno
import logging
import os
import socket
import sys
import traceback

from satsr.cli.commands import (
    cmd_calibrate,
    cmd_ee_check,
    cmd_evaluate,
    cmd_filter,
    cmd_finetune,
    cmd_natural,
    cmd_params,
    cmd_png,
    cmd_predict,
    cmd_pretrain,
    cmd_release,
    cmd_select,
    cmd_source,
    cmd_split,
    cmd_tune,
    predict_params,
)
from satsr.cli.parser import build_parser
from satsr.errors import SatsrError

__all__ = [
    "DEBUG_ENV", "build_parser", "cmd_calibrate", "cmd_ee_check", "cmd_evaluate", "cmd_filter", "cmd_finetune",
    "cmd_natural", "cmd_params", "cmd_png", "cmd_predict", "cmd_pretrain", "cmd_release", "cmd_select",
    "cmd_source", "cmd_split", "cmd_tune", "environment_error", "main", "predict_params", "setup_logging",
]


def setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    logging.getLogger("absl").setLevel(logging.WARNING)  # TF checkpoint "Sharding callback" chatter


#: OSErrors that are the machine's state, not a bug: what was expected, per errno.
_ENVIRONMENT_ERRNOS = {
    errno.ENOSPC: "free space on that file system; free some and rerun, finished work is kept",
    errno.EDQUOT: "disk quota left; free some and rerun, finished work is kept",
    errno.EROFS: "a writable file system",
    errno.EACCES: "read/write permission for the user running satsr",
    errno.EPERM: "read/write permission for the user running satsr",
}
#: Environment variable that turns on --debug, for stages run by DVC (``SATSR_DEBUG=1 dvc repro``).
DEBUG_ENV = "SATSR_DEBUG"


def environment_error(err: BaseException, command: str) -> str | None:
    """The one-line message of an OSError caused by the machine (full disk, no permission, network down),
    or None for any other exception (a bug: it keeps its traceback)."""
    # requests' ConnectionError / Timeout are OSErrors too, matched by name (not imported here)
    network = {c.__name__ for c in type(err).__mro__} & {"ConnectionError", "Timeout"}
    if isinstance(err, (ConnectionError, TimeoutError, socket.gaierror)) or (isinstance(err, OSError) and network):
        what = getattr(err, "strerror", None) or str(err) or type(err).__name__
        return (f"{command}: network error: {what} (expected a reachable network service; check the connection "
                "and rerun, finished work is kept)")
    if isinstance(err, OSError) and err.errno in _ENVIRONMENT_ERRNOS:
        where = err.filename or command
        return f"{where}: {err.strerror or os.strerror(err.errno)} (expected {_ENVIRONMENT_ERRNOS[err.errno]})"
    return None


def main(argv: list[str] | None = None) -> int:
    """Run one subcommand; user-facing errors end as one ``satsr: ...`` line on stderr and a non-zero exit.

    The DVC stage scripts (stages/*.py) call this too, so a stage fails the same way as the command."""
    args = build_parser().parse_args(argv)
    setup_logging(args.verbose)
    debug = args.debug or os.environ.get(DEBUG_ENV, "").strip().lower() not in ("", "0", "false", "no")
    try:
        args.func(args)
    except SatsrError as err:
        # A user-facing error (bad params, missing input, no credentials, NaN loss...): its message
        # names the file, key or stage, so it is the whole story; --debug adds the traceback.
        # Anything else is a bug and keeps its traceback.
        if debug:
            traceback.print_exc()
        print(f"satsr: {err}", file=sys.stderr)
        return err.exit_code
    except OSError as err:
        message = environment_error(err, args.command)
        if message is None:
            raise
        if debug:
            traceback.print_exc()
        print(f"satsr: {message}", file=sys.stderr)
        return 1
    return 0
