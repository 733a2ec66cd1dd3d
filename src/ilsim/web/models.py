"""The models the explorer shows: the built-in scenarios, and files users upload (parsed, never executed).

An upload is refused before it is read as a model when it is too large, is not UTF-8 text, has a name
with a folder in it (``..``, ``/``) or is not a YAML or SBML file by its name. An accepted file is
written under a folder this server owns, under a name made from its content (never the name the
browser sent), and compiled with ``ilsim.compile``: the same validation as ``ilsim validate``, whose
problems are shown at the field they name.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import tempfile
import threading
import uuid
import warnings
from dataclasses import dataclass
from pathlib import Path

import yaml

import ilsim
from ilsim.errors import IlsimError, ModelError, Problem

MAX_UPLOAD_BYTES = 1_000_000  # the largest model file accepted (the built-in ones are under 60 kB)
MAX_UPLOADS = 50  # uploaded models kept by one server (the oldest is forgotten first)
SUFFIXES = {".yaml": "yaml", ".yml": "yaml", ".xml": "sbml", ".sbml": "sbml"}


class UploadRefused(IlsimError):
    """An uploaded file that is not read at all (size, name, type, encoding)."""


@dataclass
class Uploaded:
    compiled: object  # ilsim.CompiledModel
    filename: str
    unit_warnings: list[str]
    spec: object = None  # the model as written (doses are added to it)


class Models:
    """Compiled models by key: ``builtin:NAME`` or ``upload:HASH``; each compiled once, by one thread."""

    def __init__(self, folder: Path | None = None):
        self._folder = Path(folder or tempfile.mkdtemp(prefix="ilsim-serve-"))
        self._folder.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._compiled: dict[str, object] = {}
        self._uploads: dict[str, Uploaded] = {}
        self._compiling: dict[str, threading.Lock] = {}

    def get(self, key: str):
        """The compiled model of a key; IlsimError when there is none (an unknown scenario, a forgotten upload)."""
        kind, _, name = key.partition(":")
        if kind == "upload":
            with self._lock:
                if name not in self._uploads:
                    raise IlsimError("this uploaded model is no longer held by the server: upload it again")
                return self._uploads[name].compiled
        if kind != "builtin" or name not in ilsim.builtin_models():
            raise IlsimError(f"no built-in scenario named '{name}'")
        with self._lock:
            if key in self._compiled:
                return self._compiled[key]
            lock = self._compiling.setdefault(key, threading.Lock())
        with lock:  # ten sessions opening one scenario compile it once
            if key not in self._compiled:
                with warnings.catch_warnings():  # unit warnings of built-ins are documented; not repeated per page
                    warnings.simplefilter("ignore")
                    self._compiled[key] = ilsim.compile(name)
        return self._compiled[key]

    def source(self, key: str):
        """The model as written, to which a page's doses are added: a built-in's name, an upload's spec."""
        kind, _, name = key.partition(":")
        if kind == "upload":
            with self._lock:
                return self._uploads[name].spec if name in self._uploads else None
        return name

    def written(self, key: str):
        """The model's spec as written (its pk: and doses: sections not yet expanded, as a compiled model's are)."""
        source = self.source(key)
        return ilsim.load(source) if isinstance(source, str) else source

    def upload(self, filename: str, contents: str) -> tuple[str, Uploaded]:
        """Check and compile an upload (``contents`` as dcc.Upload gives it: ``data:...;base64,...``).
        Returns its key; raises UploadRefused, or ModelError with the model's problems."""
        check_name(filename)
        data = decode(contents)
        digest = hashlib.sha256(data).hexdigest()[:20]
        path = self._folder / f"{digest}-{uuid.uuid4().hex[:8]}{Path(filename).suffix.lower()}"  # two sessions, one file
        path.write_bytes(data)
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                compiled = ilsim.compile(path)
                spec = ilsim.load(path)  # as written: doses a page adds go into it
        except ModelError as exc:
            exc.problems = [Problem(p.field, p.message, filename) for p in exc.problems]
            raise
        except IlsimError as exc:
            raise ModelError([Problem("", str(exc).replace(str(path), filename), filename)]) from None
        finally:
            path.unlink(missing_ok=True)  # compiled models hold what they need; the server keeps no user files
        uploaded = Uploaded(compiled, filename, [str(w.message).replace(str(path), filename) for w in caught], spec)
        with self._lock:
            self._uploads[digest] = uploaded
            while len(self._uploads) > MAX_UPLOADS:
                del self._uploads[next(iter(self._uploads))]
        return f"upload:{digest}", uploaded


def check_name(filename: str) -> str:
    """'yaml' or 'sbml' from the file's name; UploadRefused for a name with a folder in it or another type."""
    if not filename or "/" in filename or "\\" in filename or ".." in filename or "\x00" in filename:
        raise UploadRefused(f"refused '{filename}': a file name without folders ('..', '/' or '\\') is expected")
    kind = SUFFIXES.get(Path(filename).suffix.lower())
    if kind is None:
        raise UploadRefused(f"refused '{filename}': only model files are accepted (YAML: .yaml, .yml; SBML: .xml, .sbml)")
    return kind


def decode(contents: str) -> bytes:
    """The bytes of an upload; UploadRefused when it is too large or not UTF-8 text."""
    _, _, payload = (contents or "").partition("base64,")
    if len(payload) > MAX_UPLOAD_BYTES * 4 // 3 + 4:  # refused before decoding
        raise UploadRefused(f"refused: the file is larger than the limit of {MAX_UPLOAD_BYTES // 1000} kB")
    try:
        data = base64.b64decode(payload, validate=True)
        data.decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise UploadRefused("refused: the file is not UTF-8 text (a YAML or SBML model file is)") from None
    if len(data) > MAX_UPLOAD_BYTES:
        raise UploadRefused(f"refused: the file is larger than the limit of {MAX_UPLOAD_BYTES // 1000} kB")
    return data


_STEP = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def field_line(text: str, field: str) -> int | None:
    """The 1-based line of a YAML file where a problem's field (``parameters[3].range[0]``) is written; the deepest
    part of the path found when the rest was generated (a motif's expansion) or is missing. Composes the YAML
    into nodes only: nothing in it is constructed or run."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return None
    line = None
    for key, index in _STEP.findall(field):
        if isinstance(node, yaml.MappingNode) and key:
            node = next((v for k, v in node.value if getattr(k, "value", None) == key), None)
        elif isinstance(node, yaml.SequenceNode) and index and int(index) < len(node.value):
            node = node.value[int(index)]
        else:
            node = None
        if node is None:
            break
        line = node.start_mark.line + 1
    return line
