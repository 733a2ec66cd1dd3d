"""The schema of a cell type: the entries of the built-in list and of a model file's ``cell_types:`` section."""

from __future__ import annotations

from pydantic import ConfigDict, Field

from ilsim.model.base import _Strict
from ilsim.model.sections.catalogue import Text


class CellType(_Strict):
    model_config = ConfigDict(frozen=True)

    name: Text
    aliases: list[Text] = Field(default_factory=list)
    ontology_id: str | None = None  # e.g. CL:0000235 (Cell Ontology)
    description: Text

    def names(self) -> list[str]:
        return [self.name, *self.aliases]
