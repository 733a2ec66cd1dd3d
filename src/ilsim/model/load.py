"""Reading model files: YAML -> ModelSpec, with errors that name the file and the field."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import ValidationError

from ilsim.errors import ModelError, Problem
from ilsim.model.problems import _allowed_fields, field_path  # noqa: F401 - moved there; importable from here as before
from ilsim.model.problems import problems_from_validation as _problems
from ilsim.model.spec import ModelSpec


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader (no Python objects) that refuses a key given twice in one mapping."""

    def construct_mapping(self, node, deep=False):
        seen: dict = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"the key '{key}' appears twice in one mapping", key_node.start_mark
                )
            seen[key] = True
        return super().construct_mapping(node, deep=deep)


def problems_from_validation(exc: ValidationError, source: str | None, root=None) -> list[Problem]:
    """Pydantic errors as Problems with field paths; ``root`` is the schema validated (for hints), a model file by default."""
    return _problems(exc, source, root or ModelSpec)


def spec_from_dict(data, source: str | None = None) -> ModelSpec:
    """Validate a parsed model document; raise ModelError naming each bad field."""
    if not isinstance(data, dict):
        raise ModelError([Problem("", f"a model file must be a mapping at the top level, got {type(data).__name__}", source)])
    try:
        return ModelSpec.model_validate(data)
    except ValidationError as exc:
        raise ModelError(problems_from_validation(exc, source)) from None


def read_yaml(path: str | Path, what: str = "model file"):
    """A YAML document read safely (no Python objects, no repeated keys); errors name the file."""
    path = Path(path)
    source = str(path)
    if not path.exists():
        raise ModelError([Problem("", "no such file", source)])
    if path.is_dir():
        raise ModelError([Problem("", f"this is a folder, not a {what}", source)])
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ModelError([Problem("", f"cannot read the file as UTF-8 text ({exc.__class__.__name__})", source)]) from None
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        what_wrong = getattr(exc, "problem", None) or str(exc)
        raise ModelError([Problem(where, f"malformed YAML: {what_wrong}", source)]) from None
    if data is None:
        raise ModelError([Problem("", "the file is empty", source)])
    return data


def read_spec(path: str | Path) -> ModelSpec:
    """Read and validate a YAML model file (no semantic checks; see ``compile``)."""
    return spec_from_dict(read_yaml(path), str(path))


def dump_spec(spec: ModelSpec) -> str:
    """The model as YAML text (loads back to an equal spec)."""
    data = spec.model_dump(mode="json", exclude_defaults=True)
    data["metadata"] = spec.metadata.model_dump(mode="json", exclude_defaults=True)
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=110)
