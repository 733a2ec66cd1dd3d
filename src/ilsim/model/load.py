"""Reading model files: YAML -> ModelSpec, with errors that name the file and the field."""

from __future__ import annotations

from collections.abc import Hashable
from pathlib import Path

import yaml
from pydantic import ValidationError

from ilsim.errors import ModelError, Problem
from ilsim.limits import MAX_YAML_DEPTH, MAX_YAML_INT_DIGITS, MAX_YAML_NODES
from ilsim.model.problems import problems_from_validation as _problems
from ilsim.model.spec import ModelSpec


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader (no Python objects) that refuses a key given twice in one mapping, and a document larger
    than MAX_YAML_NODES nodes once its aliases are expanded: nine aliases of nine aliases of ... make a 1 KB
    file into a billion nodes (and its error messages into hundreds of megabytes)."""

    def construct_document(self, node):
        deep = _too_deep(node)
        if deep is not None:
            raise yaml.constructor.ConstructorError(
                None, None, f"mappings and lists are nested more than {MAX_YAML_DEPTH} levels deep (a limit: "
                "docs/limits.md)", deep.start_mark)
        size = _expanded_size(node, {})
        if size > MAX_YAML_NODES:
            raise yaml.constructor.ConstructorError(
                None, None, f"the document expands to more than {MAX_YAML_NODES:,} values through its aliases (*name); "
                "write the entries out or use fewer aliases", node.start_mark)
        return super().construct_document(node)

    def construct_yaml_int(self, node):
        if len(str(node.value)) > MAX_YAML_INT_DIGITS:  # Python refuses to convert longer ones (and they mean nothing)
            raise yaml.constructor.ConstructorError(
                None, None, f"a number of more than {MAX_YAML_INT_DIGITS} digits", node.start_mark)
        return super().construct_yaml_int(node)

    def construct_mapping(self, node, deep=False):
        seen: dict = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if not isinstance(key, Hashable) or isinstance(key, tuple):
                raise yaml.constructor.ConstructorError(
                    None, None, f"a key must be a name or a number, not a {_kind(key_node)} ('? ' keys are not model "
                    "fields)", key_node.start_mark)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"the key '{key}' appears twice in one mapping", key_node.start_mark
                )
            seen[key] = True
        return super().construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor("tag:yaml.org,2002:int", _UniqueKeyLoader.construct_yaml_int)


def _kind(node) -> str:
    return {yaml.MappingNode: "mapping", yaml.SequenceNode: "list"}.get(type(node), "value")


def _children(node) -> list:
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return list(node.value) if isinstance(node, yaml.SequenceNode) else []


def _too_deep(root):
    """The first node whose mappings and lists, aliases followed, nest more than MAX_YAML_DEPTH levels, or None.
    Heights are memoised by node identity (an alias is a shared node), so each distinct node is visited once
    whichever path reaches it first; no recursion."""
    height: dict[int, int] = {}
    stack = [(root, False)]
    while stack:
        node, finished = stack.pop()
        if finished:
            height[id(node)] = 1 + max((height[id(k)] for k in _children(node)), default=0)
            if height[id(node)] > MAX_YAML_DEPTH:
                return node
        elif id(node) not in height:
            height[id(node)] = 0  # on the current path: an alias of an ancestor (a loop) adds nothing
            stack.append((node, True))
            stack.extend((k, False) for k in _children(node) if id(k) not in height)
    return None


def problems_from_validation(exc: ValidationError, source: str | None, root=None) -> list[Problem]:
    """Pydantic errors as Problems with field paths; ``root`` is the schema validated (for hints), a model file by default."""
    return _problems(exc, source, root or ModelSpec)


def _expanded_size(node, sizes: dict[int, int]) -> int:
    """Values in a composed YAML node once every alias is copied out (aliases are shared nodes: memoised by
    identity, so this costs one visit per distinct node; loops are counted once)."""
    key = id(node)
    if key in sizes:
        return sizes[key]
    sizes[key] = 1  # a recursive alias (a node inside itself) counts once
    if isinstance(node, yaml.MappingNode):
        total = 1 + sum(_expanded_size(k, sizes) + _expanded_size(v, sizes) for k, v in node.value)
    elif isinstance(node, yaml.SequenceNode):
        total = 1 + sum(_expanded_size(item, sizes) for item in node.value)
    else:
        total = 1
    sizes[key] = min(total, MAX_YAML_NODES + 1)
    return sizes[key]


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
    except RecursionError:  # PyYAML composes nested collections recursively
        raise ModelError([Problem("", f"malformed YAML: mappings and lists nested more than {MAX_YAML_DEPTH} levels "
                                          "deep (a limit: docs/limits.md)", source)]) from None
    except yaml.YAMLError as exc:
        raise ModelError([Problem(*yaml_mistake(exc), source)]) from None
    if data is None:
        raise ModelError([Problem("", "the file is empty", source)])
    return data


def yaml_mistake(exc: yaml.YAMLError) -> tuple[str, str]:
    """PyYAML's error as (where, what to do) in plain words: the common mistakes (a tab, indentation, an open
    quote or bracket) by name, anything else as PyYAML says it."""
    problem = getattr(exc, "problem", None) or str(exc)
    context = getattr(exc, "context", None) or ""
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    opened = getattr(exc, "context_mark", None)
    line, column = (mark.line + 1, mark.column + 1) if mark else (None, None)
    if mark is None:
        return "", f"malformed YAML: {problem}"
    if "'\\t'" in problem:
        return f"line {line}, column {column}", "a tab; indent with spaces (YAML does not allow tabs there)"
    if "quoted scalar" in context and opened is not None:
        return f"line {opened.line + 1}", (f"a quote is not closed (the one at column {opened.column + 1}); end the value "
                                           "with the same quote")
    if problem.startswith("expected <block end>"):
        return f"line {line}", "indentation does not match the lines above; indent entries of one mapping or list equally"
    if problem == "mapping values are not allowed here":
        return f"line {line}, column {column}", ("unexpected ':'; indentation does not match the lines above, or a value "
                                                  "that contains ': ' needs quotes")
    if context in ("while parsing a flow sequence", "while parsing a flow mapping") and opened is not None:
        bracket = "[" if "sequence" in context else "{"
        return f"line {line}, column {column}", (f"the '{bracket}' opened at line {opened.line + 1}, column "
                                                  f"{opened.column + 1} is not closed, or its entries lack a comma")
    return f"line {line}, column {column}", f"malformed YAML: {problem}"


def read_spec(path: str | Path) -> ModelSpec:
    """Read and validate a YAML model file (no semantic checks; see ``compile``)."""
    return spec_from_dict(read_yaml(path), str(path))


def dump_spec(spec: ModelSpec) -> str:
    """The model as YAML text (loads back to an equal spec)."""
    data = spec.model_dump(mode="json", exclude_defaults=True)
    data["metadata"] = spec.metadata.model_dump(mode="json", exclude_defaults=True)
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=110)
