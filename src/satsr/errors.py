"""The one base class of satsr's user-facing errors.

An error deriving from :class:`SatsrError` means "the message is the whole story": it names the file,
key or stage and says what was expected, so the user can fix it without reading code. The `satsr`
command prints such an error as one line and exits non-zero (``--debug`` adds the traceback);
anything else is a bug and keeps its traceback. Each subclass also keeps the built-in base it had
(``ValueError``, ``RuntimeError``, ``FileNotFoundError``), so existing ``except`` clauses still match.

This module imports nothing, so every layer (including ``satsr.config`` and the CLI, which must not
import TensorFlow for ``--help``) can use it.
"""

from __future__ import annotations


class SatsrError(Exception):
    """Base of every user-facing satsr error; ``exit_code`` is what ``satsr`` returns for it."""

    exit_code: int = 1


class InputError(SatsrError, ValueError):
    """A stage input (manifest, report, split table, imported folder) is not what the stage expects."""


class MissingInputError(SatsrError, FileNotFoundError):
    """A stage input is absent; the message names it and the stage (or command) that produces it."""
