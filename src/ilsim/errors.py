"""Errors a user can act on: each names where the mistake is (file, field) and what to do."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from types import MappingProxyType

from ilsim.limits import MAX_MESSAGE, excerpt


def closest(name: str, known: Iterable[str]) -> str | None:
    """The known name nearest to a misspelt one, or None when nothing is close."""
    known = list(known)
    by_lower = {k.lower(): k for k in known}
    if name.lower() in by_lower:  # 'lsoda' -> 'LSODA'
        return by_lower[name.lower()]
    match = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    if match:
        return match[0]
    # short names: 'Mac' for 'M', 'Treg' for 'Tregs'
    prefixes = [k for k in known if k and (name.lower().startswith(k.lower()) or k.lower().startswith(name.lower()))]
    return max(prefixes, key=len) if prefixes else None


def did_you_mean(name: str, known: Iterable[str]) -> str:
    near = closest(name, known)
    return f" (did you mean '{near}'?)" if near else ""


@dataclass(frozen=True)
class Problem:
    """One mistake in a model: where (file, field) and what is wrong."""

    field: str
    message: str
    source: str | None = None

    def __str__(self) -> str:
        # a bounded message whatever the input: quoted user text is shortened where it is quoted, and this
        # catches any place that quotes it whole (a huge value echoed back would flood the terminal)
        where = ": ".join(excerpt(part, MAX_MESSAGE) for part in (self.source, self.field) if part)
        message = excerpt(self.message, MAX_MESSAGE)
        return f"{where}: {message}" if where else message


class IlsimError(Exception):
    """Base class of errors caused by the user's input (shown without a traceback)."""


class ExpressionError(IlsimError):
    """An expression is not valid (syntax, a construct outside the whitelist, an unknown name)."""


class ModelError(IlsimError):
    """A model definition has one or more problems; ``problems`` lists them all."""

    def __init__(self, problems: list[Problem]):
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class SimulationError(IlsimError):
    """An integration failed; the message says when and which variables were involved."""


class SbmlImportWarning(UserWarning):
    """An SBML element imported as libroadrunner runs it rather than as the file states it (a reaction without a
    kinetic law, a constant species a reaction changes); the message names the element."""


# Python callers pass arguments (``parameters=``, ``t_end=``); the command line passes options (``--set``,
# ``--t-end``). Messages about an argument name it through ``argument()``: the argument's own name, or the
# word of the interface in use, which the CLI declares around each command with ``speaking()``.
_words: ContextVar[Mapping[str, str]] = ContextVar("ilsim_argument_words", default=MappingProxyType({}))


def argument(name: str) -> str:
    """How the caller wrote the argument ``name``: ``parameters`` from Python, ``--set`` from the CLI."""
    return _words.get().get(name, name)


@contextmanager
def speaking(words: Mapping[str, str]):
    """Within the block, messages name arguments by ``words`` (argument name -> the caller's word for it)."""
    token = _words.set({**_words.get(), **words})
    try:
        yield
    finally:
        _words.reset(token)
