"""The interleukin catalogue: what each interleukin (and partner cytokine) does, with sources.

The built-in catalogue is the data file ``interleukins.yaml`` beside this module. It is read with
the same safe YAML loader as model files and validated by the schema below (``CatalogueFile``), so
a mistake in it names the file and the field exactly as a mistake in a model does. Users declare
new interleukins with the same fields (a top-level ``interleukins:`` section of a model file) and
``load_catalogue(extra)`` merges them with the built-in ones.

Lookups (``Catalogue.get``) ignore case, spaces, hyphens and underscores and accept the Greek
letters: ``il6``, ``IL_6``, ``interleukin-6`` and ``BSF-2`` all find IL-6, ``IL-1β`` finds IL-1b.
"""

from __future__ import annotations

import difflib
import functools
import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from pydantic import Field, ValidationError

from ilsim.errors import ModelError, Problem
from ilsim.model.base import _Strict
from ilsim.model.load import problems_from_validation, read_yaml
from ilsim.model.sections.catalogue import (  # the schema lives with the model's; re-exported for existing imports
    EFFECT_KINDS,
    Category,
    Effect,
    EffectKind,
    HalfLife,
    Interleukin,
    Text,
    Therapeutic,
    key,
)

__all__ = ["EFFECT_KINDS", "Catalogue", "CatalogueFile", "Category", "Effect", "EffectKind", "HalfLife", "Interleukin",
           "Text", "Therapeutic", "builtin_catalogue", "catalogue_from_dict", "key", "load_catalogue", "read_catalogue"]

DATA_FILE = Path(__file__).with_name("interleukins.yaml")


class CatalogueFile(_Strict):
    """The schema of ``interleukins.yaml`` (and of a model file's ``interleukins:`` section)."""

    interleukins: list[Interleukin] = Field(min_length=1)


class Catalogue:
    """Entries (interleukins, cell types) by name; ``get`` finds one by its name or any alias.

    ``kind`` names an entry in messages, ``section`` is the model-file section that declares new
    ones, ``listing`` the command that lists them.
    """

    def __init__(self, entries: Iterable = (), source: str | None = None, *, kind: str = "interleukin",
                 section: str = "interleukins", listing: str = "ilsim interleukins"):
        self.kind, self.section, self.listing = kind, section, listing
        self._entries: list = []
        self._index: dict = {}
        problems = self._add(entries, source)
        if problems:
            raise ModelError(problems)

    def _add(self, entries: Iterable[Interleukin], source: str | None) -> list[Problem]:
        """Add entries (numbered interleukins[0], ... in messages); the problems of those refused."""
        problems: list[Problem] = []
        for i, entry in enumerate(entries):
            where = f"{self.section}[{i}]"
            same = self._index.get(key(entry.name))
            if same is not None and same.name == entry.name and same == entry:
                continue  # an exact copy of an entry already here (e.g. a built-in) changes nothing
            if same is not None:
                problems.append(Problem(f"{where}.name", _clash_message(entry, entry.name, same), source))
                continue
            clashes = [Problem(f"{where}.aliases[{j}]", _clash_message(entry, alias, self._index[key(alias)]), source)
                       for j, alias in enumerate(entry.aliases) if key(alias) in self._index]
            if clashes:
                problems.extend(clashes)
                continue
            self._entries.append(entry)
            for name in entry.names():  # spellings of one name (IL6, IL-6) may repeat within an entry
                self._index[key(name)] = entry
        return problems

    def merged(self, extra: Iterable[Interleukin], source: str | None = None) -> Catalogue:
        """A new catalogue: this one plus ``extra`` (numbered ``interleukins[0]``, ... in messages)."""
        new = Catalogue(kind=self.kind, section=self.section, listing=self.listing)
        new._entries = list(self._entries)
        new._index = dict(self._index)
        problems = new._add(extra, source)
        if problems:
            raise ModelError(problems)
        return new

    def get(self, name: str, *, field: str = "", source: str | None = None) -> Interleukin:
        """The entry called ``name`` (or with that alias); a ModelError with the nearest name if none."""
        entry = self._index.get(key(name)) if isinstance(name, str) else None
        if entry is None:
            raise ModelError([Problem(field, f"unknown {self.kind} '{name}'{self._hint(str(name))}", source)])
        return entry

    def _hint(self, name: str) -> str:
        canonical = {n: e.name for e in self._entries for n in e.names()}
        by_key = {key(n): c for n, c in canonical.items()}
        near = _nearest(name, canonical) or _nearest(key(name), by_key)  # keys: 'il_16' is near 'il6'
        return f" (did you mean '{near}'?)" if near else f"; `{self.listing}` lists the known ones"

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and key(name) in self._index

    def __iter__(self) -> Iterator[Interleukin]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def names(self) -> list[str]:
        return [e.name for e in self._entries]

    def to_json(self) -> str:
        return json.dumps([e.model_dump(mode="json") for e in self._entries], indent=2, ensure_ascii=False)


def _nearest(name: str, canonical: dict[str, str]) -> str | None:
    """The canonical name whose spelling is nearest to ``name``; ties go to the longest common start
    ('IL-1a' -> 'IL-1b', not 'IL-21')."""
    candidates = difflib.get_close_matches(name, canonical, n=5, cutoff=0.6)
    if not candidates:
        return None

    def score(c: str):
        prefix = len(os.path.commonprefix([name.casefold(), c.casefold()]))
        return round(difflib.SequenceMatcher(None, name, c).ratio(), 9), prefix

    return canonical[max(candidates, key=score)]


def _clash_message(entry: Interleukin, name: str, other: Interleukin) -> str:
    if key(entry.name) == key(other.name) and name == entry.name:
        differ = [f for f in type(entry).model_fields if getattr(entry, f) != getattr(other, f)]
        known = "" if other.name == entry.name else f" as '{other.name}'"
        return (f"'{entry.name}' is already in the catalogue{known} and this entry differs in "
                f"{', '.join(differ)}; give the new entry another name, or leave it out to use the existing one")
    return f"'{name}' is already a name or alias of '{other.name}'; choose another"


def catalogue_from_dict(data, source: str | None = None) -> Catalogue:
    """Validate a parsed catalogue document (``{interleukins: [...]}``); ModelError naming each bad field."""
    if not isinstance(data, dict):
        raise ModelError([Problem("", f"a catalogue must be a mapping at the top level, got {type(data).__name__}", source)])
    try:
        parsed = CatalogueFile.model_validate(data)
    except ValidationError as exc:
        raise ModelError(_problems(exc, source)) from None
    return Catalogue(parsed.interleukins, source)


def read_catalogue(path: str | Path) -> Catalogue:
    """Read and validate a catalogue file (the built-in one is ``DATA_FILE``)."""
    path = Path(path)
    return catalogue_from_dict(read_yaml(path, "catalogue file"), str(path))


@functools.lru_cache(maxsize=1)
def builtin_catalogue() -> Catalogue:
    return read_catalogue(DATA_FILE)


def load_catalogue(extra: Iterable[Interleukin | dict] = (), source: str | None = None) -> Catalogue:
    """The built-in catalogue plus user-declared interleukins (e.g. a model file's ``interleukins:``).

    ``extra`` holds Interleukin objects or mappings with the same fields (validated here). A user
    entry may repeat a built-in one exactly; one with a built-in name (or alias) and other content
    is refused, naming the field (``interleukins[i].name`` in ``source``).
    """
    extra = list(extra)
    if not extra:
        return builtin_catalogue()
    try:
        entries = CatalogueFile.model_validate({"interleukins": extra}).interleukins
    except ValidationError as exc:
        raise ModelError(_problems(exc, source)) from None
    return builtin_catalogue().merged(entries, source)


def _problems(exc: ValidationError, source: str | None, root=None) -> list[Problem]:
    """Pydantic errors as Problems (the model loader's conversion), with field hints from the schema."""
    return problems_from_validation(exc, source, root=root or CatalogueFile)
