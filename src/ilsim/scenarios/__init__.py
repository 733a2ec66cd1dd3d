"""Built-in models: each a YAML file in this folder whose parameters cite their paper."""

from __future__ import annotations

from pathlib import Path

import yaml

FOLDER = Path(__file__).parent


def builtin_names() -> list[str]:
    return sorted(p.stem for p in FOLDER.glob("*.yaml"))


def builtin_path(name: str) -> Path | None:
    path = FOLDER / f"{name}.yaml"
    return path if path.exists() else None


def describe() -> list[tuple[str, str]]:
    """(name, one-line title) of every built-in model."""
    out = []
    for name in builtin_names():
        meta = yaml.safe_load(builtin_path(name).read_text()).get("metadata", {})
        out.append((name, meta.get("title") or meta.get("description", "").split("\n")[0]))
    return out
