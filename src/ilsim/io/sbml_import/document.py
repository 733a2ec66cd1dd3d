"""Reading an SBML file with libsbml: not XML, not SBML, inconsistent or using packages -> a ModelError.

libsbml is C++: a crafted file can crash it (MathML nested some thousands deep overflows its stack and kills
the process), and no Python code runs after that. So the file is first read by Python's streaming XML parser
(expat, one chunk at a time, no tree kept), which refuses what no SBML model needs: nesting deeper than
MAX_XML_DEPTH, more than MAX_XML_BYTES, and document type declarations (entities can expand a small file into
gigabytes). Exceptions libsbml raises are reported as problems of the file, never as tracebacks.
"""

from __future__ import annotations

import xml.parsers.expat
from pathlib import Path

import libsbml as sb

from ilsim.errors import ModelError, Problem
from ilsim.limits import MAX_XML_BYTES, MAX_XML_DEPTH

# Packages that change what a model means: a model using one cannot be imported without it.
# Layout and render only draw the network; fbc without 'required' only adds flux bounds for FBA.
_IGNORABLE_PACKAGES = {"layout", "render"}
# Errors that cannot change a simulation: a 'units' attribute naming no unit definition (units are kept as
# text) and malformed notes (documentation). Errors in the drawing packages are handled by package below.
_HARMLESS = {10313, 10801, 10802, 10803, 10804}
# Errors the importer reads as libroadrunner does: a constant species that a reaction changes (20611, with a note),
# and a species read by a kinetic law without being listed as its reaction's modifier (21121: the law means the same).
_READ_AS_LIBROADRUNNER = {20611, 21121}
_MAX_SHOWN = 20  # libsbml messages listed before "... and N more"


def read_document(path: str | Path):
    """A libsbml SBMLDocument with a model, checked for errors; refused with every libsbml message otherwise."""
    path = Path(path)
    source = str(path)
    if not path.exists():
        raise ModelError([Problem("", "no such file", source)])
    if path.is_dir():
        raise ModelError([Problem("", "this is a folder, not an SBML file", source)])
    precheck(path, source)
    try:
        return _read(path, source)
    except ModelError:
        raise
    except Exception as exc:  # libsbml raising from C++ (e.g. SBMLConstructorException on a bad namespace)
        raise ModelError([Problem("", f"libsbml could not read the file: {type(exc).__name__}: {exc}", source)]) from None


def precheck(path: Path, source: str) -> None:
    """Refuse, with a ModelError, an XML file that could crash or exhaust libsbml (see the module's text)."""
    size = path.stat().st_size
    if size > MAX_XML_BYTES:
        raise ModelError([Problem("", f"the file is {size:,} bytes; SBML files are limited to {MAX_XML_BYTES:,}", source)])
    parser = xml.parsers.expat.ParserCreate()
    depth = 0

    def start(name, attributes):
        nonlocal depth
        depth += 1
        if depth > MAX_XML_DEPTH:
            raise _Refused(f"elements are nested more than {MAX_XML_DEPTH} deep (at <{name[:40]}>); no SBML model "
                           "needs that, and libsbml would crash on it")

    def end(name):
        nonlocal depth
        depth -= 1

    def doctype(*_):
        raise _Refused("the file has a document type declaration (<!DOCTYPE>), which SBML does not use; its "
                       "entities could expand without bound")

    parser.StartElementHandler, parser.EndElementHandler = start, end
    parser.StartDoctypeDeclHandler = doctype
    parser.EntityDeclHandler = doctype
    try:
        with path.open("rb") as f:
            while chunk := f.read(1 << 16):
                parser.Parse(chunk, False)
            parser.Parse(b"", True)
    except _Refused as refused:
        line = parser.CurrentLineNumber
        raise ModelError([Problem(f"line {line}", str(refused), source)]) from None
    except xml.parsers.expat.ExpatError as exc:
        where = f"line {exc.lineno}" if exc.lineno else ""
        raise ModelError([Problem(where, f"not valid XML: {xml.parsers.expat.ErrorString(exc.code)}", source)]) from None


class _Refused(Exception):
    pass


def _read(path: Path, source: str):
    doc = sb.SBMLReader().readSBMLFromFile(str(path))
    problems = _errors(doc, source)
    if problems:
        raise ModelError(problems)
    if doc.getModel() is None:
        raise ModelError([Problem("", "the SBML document has no <model> element", source)])
    # Units are not checked (ilsim keeps units as text); modelling-practice advice is not an error.
    doc.setConsistencyChecks(sb.LIBSBML_CAT_UNITS_CONSISTENCY, False)
    doc.setConsistencyChecks(sb.LIBSBML_CAT_MODELING_PRACTICE, False)
    doc.checkConsistency()
    problems = _errors(doc, source)
    if problems:
        raise ModelError([Problem("", "libsbml's consistency check failed:", source), *problems])
    packages = []
    declared = doc.getNamespaces()
    for i in range(declared.getNumNamespaces()):  # a package is declared by its namespace
        parts = declared.getURI(i).split("/")
        name = parts[6] if len(parts) > 6 and parts[2] == "www.sbml.org" and parts[6] != "core" else None
        if name and name not in _IGNORABLE_PACKAGES and (name in ("comp", "distrib", "arrays") or _required(doc, name)):
            packages.append(name)
    if packages:
        raise ModelError([Problem("sbml", f"the SBML package(s) {', '.join(sorted(packages))} are not supported "
                                          "(only SBML core can be imported)", source)])
    return doc


def _required(doc, name: str) -> bool:
    try:
        return bool(doc.getPackageRequired(name))
    except Exception:  # a package libsbml does not know: assume it matters
        return True


def _errors(doc, source: str) -> list[Problem]:
    """libsbml errors and fatal errors (not warnings), each with its line number."""
    log = doc.getErrorLog()
    found = [log.getError(i) for i in range(log.getNumErrors())]
    found = [e for e in found if e.getSeverity() >= sb.LIBSBML_SEV_ERROR and not _harmless(e)]
    problems = []
    for e in found[:_MAX_SHOWN]:
        text = " ".join(e.getMessage().split())
        if e.getErrorId() == 10103 and doc.getModel() is None:
            text = "the document is not an <sbml> document (no SBML namespace, level and model)"
        problems.append(Problem(f"line {e.getLine()}" if e.getLine() else "", f"{_kind(e)}{text}", source))
    if len(found) > _MAX_SHOWN:
        problems.append(Problem("", f"... and {len(found) - _MAX_SHOWN} more libsbml errors", source))
    return problems


def _harmless(error) -> bool:
    if error.getErrorId() in _HARMLESS | _READ_AS_LIBROADRUNNER or error.getPackage() in _IGNORABLE_PACKAGES:
        return True
    # a drawing package misplaced or malformed (e.g. layout in a Level 2 file): the model itself is intact
    message = error.getMessage()
    return error.getErrorId() in (10102, 10103) and any(f"ackage {p}" in message or f"package '{p}" in message
                                                        for p in _IGNORABLE_PACKAGES)


def _kind(error) -> str:
    if error.getErrorId() < 10000:  # libsbml's XML-layer errors (1xxx): the file is not well-formed XML
        return "not valid XML: "
    if error.getErrorId() in (10101, 10102, 10103, 20101, 20102, 20103):  # wrong root element, namespace, level
        return "not SBML: "
    return ""
