"""Model parameters that set numbers of the ``tissue:`` section (``tissue.parameters: {k_sec: agents[Th].secretion[0].rate}``).

A bound number takes the parameter's value: the model's own in a single run, each row's in a cohort or sweep, and the
new value from the time a timed event sets the parameter. A path is dot-separated attribute names of the section;
a list entry is chosen by its index or, in ``agents`` and ``fields``, by its species (``agents[Th]``). The section
with the values set is validated again, so a value the section would refuse (a negative rate) is refused here too.
"""

from __future__ import annotations

import re

from ilsim.model.sections.tissue import Tissue

_STEP = re.compile(r"^([A-Za-z_]\w*)(?:\[([^\]]+)\])?$")


def _walk(data, path: str):
    """The container holding the path's last key, and that key; ValueError when the path does not lead to a number."""
    node, parts = data, path.split(".")
    for depth, part in enumerate(parts):
        m = _STEP.match(part.strip())
        if not m or not isinstance(node, dict) or m.group(1) not in node:
            raise ValueError(f"'{part}' is not a setting of the tissue section here")
        parent, key = node, m.group(1)
        node = node[key]
        if m.group(2) is not None:
            if not isinstance(node, list):
                raise ValueError(f"'{key}' is not a list")
            index = m.group(2).strip()
            if index.isdigit():
                i = int(index)
            else:
                i = next((k for k, e in enumerate(node) if isinstance(e, dict) and e.get("species") == index), -1)
            if not 0 <= i < len(node):
                raise ValueError(f"'{key}' has no entry '{index}'")
            parent, key = node, i
            node = node[i]
        if depth == len(parts) - 1:
            if isinstance(node, bool) or not isinstance(node, (int, float)):
                raise ValueError(f"'{path}' is not a number of the section")
            return parent, key
    raise ValueError("an empty path")


def check(tissue: Tissue, path: str) -> None:
    _walk(tissue.model_dump(mode="json"), path)


def apply(tissue: Tissue, values: dict[str, float], seed: int | None = None) -> Tissue:
    """The section with each bound path set to its value (and the seed, if given), validated again."""
    data = tissue.model_dump(mode="json")
    for path, value in values.items():
        parent, key = _walk(data, path)
        parent[key] = float(value)
    if seed is not None:
        data["seed"] = int(seed)
    return Tissue.model_validate(data)
