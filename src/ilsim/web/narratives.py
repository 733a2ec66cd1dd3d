"""The teaching notes of the built-in scenarios: authored text kept as data, one YAML file per scenario in
narratives/ (what the interleukins do, what each curve is, where in the curves to look), validated here.

Which curves exist is the model's business: a test runs each scenario and checks every curve a note names.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from ilsim.errors import ModelError, Problem

FOLDER = Path(__file__).parent / "narratives"


class LookFor(BaseModel):
    model_config = ConfigDict(extra="forbid")
    curve: str
    what: str


class Narrative(BaseModel):
    model_config = ConfigDict(extra="forbid")
    interleukin: str  # what the interleukin(s) of the scenario do
    curves: dict[str, str]  # variable -> what the curve is
    look_for: list[LookFor] = []  # where in a curve secretion on stimulation, the stop signal or a fault shows
    faults: dict[str, str] = {}  # fault mode -> where it shows

    def named_curves(self) -> set[str]:
        return set(self.curves) | {item.curve for item in self.look_for}


@cache
def narrative(name: str) -> Narrative | None:
    """The note of built-in scenario ``name``, or None when it has none (an uploaded model)."""
    path = FOLDER / f"{name}.yaml"
    if not path.is_file():
        return None
    try:
        return Narrative.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
    except ValidationError as exc:
        raise ModelError([Problem(".".join(str(x) for x in e["loc"]), e["msg"], str(path)) for e in exc.errors()]) from None
