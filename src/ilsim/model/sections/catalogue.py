"""The schema of an interleukin: the entries of the catalogue and of a model file's ``interleukins:`` section.

Plain data; ``ilsim.biology.catalogue`` reads the built-in catalogue with it, merges declared
entries and answers lookups.
"""

from __future__ import annotations

import json
import math
import re
from typing import Annotated, Literal

from pydantic import ConfigDict, Field, StringConstraints, field_validator, model_validator

from ilsim.model.base import Reference, _Strict

EffectKind = Literal[
    "pain", "fever", "inflammation", "allergic reaction", "regeneration",
    "activation/proliferation", "suppression/resolution",
]
EFFECT_KINDS: tuple[str, ...] = EffectKind.__args__
Category = Literal["interleukin", "partner cytokine"]
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]

_HOURS = {"min": 1 / 60, "hour": 1.0, "day": 24.0}
_UNIT_LABEL = {"min": "min", "hour": "h", "day": "days"}


class _Entry(_Strict):
    model_config = ConfigDict(frozen=True)  # catalogue entries are shared (the built-ins are cached)


class Effect(_Entry):
    """One effect, classified into a fixed set of kinds (what a model or a reader can filter on)."""

    kind: EffectKind
    description: Text


class HalfLife(_Entry):
    """A published half-life: ``value`` (or the range ``value``..``upper``) in ``units``."""

    value: float = Field(gt=0, allow_inf_nan=False)
    upper: float | None = None  # upper end when the source gives a range (e.g. 4 to 6 hours)
    units: Literal["min", "hour", "day"]
    context: Text  # what was measured: which phase, route, population
    source: Text

    @field_validator("value", "upper")
    @classmethod
    def _finite(cls, v):
        if v is not None and not math.isfinite(v):
            raise ValueError(f"must be a finite number, got {v}")
        return v

    @model_validator(mode="after")
    def _range(self):
        if self.upper is not None and not self.upper > self.value:
            raise ValueError(f"upper ({self.upper:g}) must be greater than value ({self.value:g})")
        return self

    @property
    def hours(self) -> float:
        """The half-life (the lower end of a range) in hours."""
        return self.value * _HOURS[self.units]

    @property
    def upper_hours(self) -> float | None:
        return None if self.upper is None else self.upper * _HOURS[self.units]

    def __str__(self) -> str:
        value = f"{self.value:g}" if self.upper is None else f"{self.value:g}-{self.upper:g}"
        return f"{value} {_UNIT_LABEL[self.units]}"


class Therapeutic(_Entry):
    """A medicine that is, or targets, the interleukin."""

    name: Text
    kind: Text  # e.g. "recombinant interleukin", "monoclonal antibody", "receptor antagonist", "fusion protein"
    action: Text  # e.g. "blocks IL-6 receptor"
    indications: list[Text] = Field(min_length=1)
    half_life: HalfLife | None = None
    source: Text


class Interleukin(_Entry):
    """One catalogue entry. The same fields declare a new interleukin in a model file."""

    name: Text
    aliases: list[Text] = Field(default_factory=list)
    category: Category = "interleukin"
    description: Text
    producers: list[Text] = Field(min_length=1)
    targets: list[Text] = Field(min_length=1)
    receptor: Text
    effects: list[Effect] = Field(min_length=1)
    half_life: HalfLife | None = None
    therapeutics: list[Therapeutic] = Field(default_factory=list)
    references: list[Reference] = Field(min_length=1)
    notes: str = ""

    @field_validator("name", "aliases")
    @classmethod
    def _one_line(cls, v):
        for name in [v] if isinstance(v, str) else v:
            if "\n" in name or not key(name):
                raise ValueError(f"'{name}' is not a usable name (one line, with letters or digits)")
        return v

    @property
    def effect_kinds(self) -> list[str]:
        """The kinds of its effects, each once, in the catalogue's order of kinds."""
        kinds = {e.kind for e in self.effects}
        return [k for k in EFFECT_KINDS if k in kinds]

    def names(self) -> list[str]:
        return [self.name, *self.aliases]

    def to_json(self) -> str:
        return json.dumps(self.model_dump(mode="json"), indent=2, ensure_ascii=False)


_GREEK = str.maketrans({"α": "a", "β": "b", "γ": "g", "δ": "d", "κ": "k"})


def key(name: str) -> str:
    """The lookup key of a name: case, spaces, hyphens and underscores ignored, Greek letters spelt."""
    return re.sub(r"[\s_\-]+", "", name.casefold().translate(_GREEK))
