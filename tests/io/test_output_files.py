"""`import-sbml -o` and `export-sbml -o` never overwrite a file unless told to, never the input file, and
write atomically: an interrupted or failed write leaves the earlier file as it was and no temporary file."""

from __future__ import annotations

import os

import libsbml
import pytest

from ilsim.io import atomic

KP = "kirschner-panetta-1998"


@pytest.fixture
def exported(cli, tmp_path):
    path = tmp_path / "kp.xml"
    assert cli("export-sbml", KP, "-o", path).exit_code == 0
    return path


def test_an_existing_file_is_kept_unless_overwrite_is_given(cli, refused, tmp_path, exported):
    target = tmp_path / "mine.yaml"
    target.write_text("my notes\n")
    refused(cli("import-sbml", exported, "-o", target), str(target), "exists", "--overwrite")
    assert target.read_text() == "my notes\n"
    refused(cli("export-sbml", KP, "-o", target), "exists", "--overwrite")
    assert target.read_text() == "my notes\n"
    assert cli("import-sbml", exported, "-o", target, "--overwrite").exit_code == 0
    assert "species:" in target.read_text()
    assert cli("export-sbml", KP, "-o", target, "--overwrite").exit_code == 0
    assert libsbml.readSBMLFromString(target.read_text()).getNumErrors(libsbml.LIBSBML_SEV_ERROR) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kp.xml", "mine.yaml"]


def test_the_input_file_is_never_the_output(cli, refused, tmp_path, exported):
    before = exported.read_bytes()
    refused(cli("import-sbml", exported, "-o", exported, "--overwrite"), "is the input file", "choose another")
    link = tmp_path / "link.xml"
    link.symlink_to(exported)
    refused(cli("import-sbml", exported, "-o", link, "--overwrite"), "is the input file")
    os.link(exported, tmp_path / "hard.xml")
    refused(cli("import-sbml", tmp_path / "hard.xml", "-o", exported, "--overwrite"), "is the input file")
    model = tmp_path / "model.yaml"
    assert cli("import-sbml", exported, "-o", model).exit_code == 0
    text = model.read_bytes()
    refused(cli("export-sbml", model, "-o", model, "--overwrite"), "is the input file")
    assert exported.read_bytes() == before and model.read_bytes() == text


def test_a_failed_write_keeps_the_earlier_file_and_leaves_nothing(cli, refused, tmp_path, exported, monkeypatch):
    target = tmp_path / "model.yaml"
    target.write_text("earlier\n")

    def full(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(atomic.os, "replace", full)
    refused(cli("import-sbml", exported, "-o", target, "--overwrite"), "No space left on device")
    refused(cli("export-sbml", KP, "-o", target, "--overwrite"), "No space left on device")
    monkeypatch.undo()
    assert target.read_text() == "earlier\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kp.xml", "model.yaml"]


def test_a_killed_writer_leaves_the_earlier_file_and_the_next_write_tidies_up(cli, tmp_path, exported):
    target = tmp_path / "model.yaml"
    target.write_text("earlier\n")
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child dies after writing, before the rename
        os.replace = lambda src, dst: os._exit(9)
        with atomic.atomic_file(target) as tmp:
            tmp.write_text("half")
        os._exit(0)
    os.waitpid(pid, 0)
    assert target.read_text() == "earlier\n"
    assert sorted(p.suffix for p in tmp_path.iterdir() if p.name.startswith(".model.yaml.")) == [".lock", ".tmp"]
    assert cli("import-sbml", exported, "-o", target, "--overwrite").exit_code == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kp.xml", "model.yaml"]
