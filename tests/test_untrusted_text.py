"""Text from a model file never drives the terminal (issue 18): a model whose title, units, descriptions,
sources, process names and outcome labels carry Rich markup, escape sequences (OSC 8 hyperlinks, ESC[2J),
C1 controls, a carriage return and a bidirectional override goes through every command that prints it,
on consoles forced to act as a colour terminal; the bytes written must hold no escape sequence but Rich's
own styles and cursor moves, no OSC at all, and show the markup literally. The HTML reports escape it.

The model is the built-in Kirschner-Panetta model with only its texts replaced, so the cohort, sweep
and sensitivity runs reuse the kernels the other tests compile.
"""

from __future__ import annotations

import io
import re
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from ilsim import cli as cli_module
from ilsim import scenarios
from ilsim.report.safe_text import console, figure_text, html_text, plain, visible

LINK = "[link=https://example.com]click me[/link]"
TITLE = LINK + " \x1b]8;;https://evil.example/\x1b\\evil\x1b]8;;\x1b\\ \x1b[2J [/] cost $\\frac{a$"
UNITS_NOTE = " ([blink]u[/blink]\x1b[2J)"  # units are parsed (model/units.py): the hostile text is a unit's note
UNITS = "cells" + UNITS_NOTE
DESCRIPTION = "[/]\x1b]8;;https://e.example/\x07 \u202eright-to-left\r\x9b2J :x: <script>alert(1)</script>"
SOURCE = "[link=https://x.example]s[/link]\x1b[31m"
# Rich's own output on a terminal: styles (SGR), hiding/showing the cursor, erasing a line, returning to its start
RICH_OWN = re.compile(r"\x1b\[[0-9;]*m|\x1b\[\?25[lh]|\x1b\[2K|\x1b\[\d*A|\r")
UNSAFE = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029]")


def assert_plain(output: str, *shown: str) -> str:
    """No OSC, no escape sequence but Rich's own, no control character; each of ``shown`` appears literally."""
    assert "\x1b]" not in output, "an OSC sequence (a hyperlink) reached the terminal"
    rest = RICH_OWN.sub("", output)
    bad = UNSAFE.search(rest)
    assert bad is None, f"{bad.group()!r} reached the terminal: {rest[max(0, bad.start() - 60):bad.end() + 20]!r}"
    for text in shown:
        assert text in rest, f"{text!r} not shown literally in:\n{rest}"
    return rest


@pytest.fixture
def hostile(tmp_path) -> Path:
    data = yaml.safe_load(scenarios.builtin_path("kirschner-panetta-1998").read_text())
    meta = data["metadata"]
    meta.update(title=TITLE, description=DESCRIPTION, time_units="day" + UNITS_NOTE)
    meta["references"] = [{"citation": SOURCE, "url": "https://a.example/\x1b[2J"}]
    for s in data["species"]:
        s.update(units=UNITS, description=DESCRIPTION)
    for p in data["parameters"]:
        p.update(units=UNITS, description=DESCRIPTION, source=SOURCE)
    for k, p in enumerate(data["processes"]):
        p["name"] = f"{k} [/]\x1b[2J"
    data["observables"][0].update(units=UNITS, description=DESCRIPTION)
    for k, o in enumerate(data["outcomes"]):
        o["label"] = f"[red]{k}[/red]\x1b[2J\u202e"
    path = tmp_path / "hostile.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


@pytest.fixture
def terminal(monkeypatch):
    """Run `ilsim ARGS...` with both consoles forced to be a colour terminal; return (exit code, everything
    written to the terminal, the exception). Python warnings raised meanwhile count as written to stderr."""
    runner = CliRunner(env={"COLUMNS": "200"})

    def invoke(*args):
        stdout, stderr = io.StringIO(), io.StringIO()
        kwargs = {"force_terminal": True, "color_system": "truecolor", "width": 200}
        monkeypatch.setattr(cli_module, "out", console(file=stdout, **kwargs))
        monkeypatch.setattr(cli_module, "err", console(file=stderr, soft_wrap=True, **kwargs))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            res = runner.invoke(cli_module.app, [str(a) for a in args], prog_name="ilsim")
        shown = [str(w.message) for w in caught]
        return res.exit_code, stdout.getvalue() + stderr.getvalue() + res.output + "\n".join(shown), res.exception

    return invoke


def test_visible_and_plain_keep_every_character_readable():
    assert visible("a\x1b[2Jb\x07\x9b\x7f\u202e\tc\nd") == "a\\x1b[2Jb\\x07\\x9b\\x7f\\u202e\tc\nd"
    assert plain("[link=https://e]x[/link] [/]") == "\\[link=https://e]x\\[/link] \\[/]"
    assert html_text("<b>\x1b</b>'") == "&lt;b&gt;\\x1b&lt;/b&gt;&#x27;"
    assert figure_text("$\\frac{a$ \x1b") == "\\$\\frac{a\\$ \\x1b"
    # Rich renders plain() text exactly as visible() shows it
    buffer = io.StringIO()
    console(file=buffer, width=200).print(f"[bold]{plain(TITLE)}[/]")
    assert buffer.getvalue() == visible(TITLE) + "\n"


@pytest.mark.parametrize("command", [
    ["show"], ["validate"], ["compare", "--t-end", "50", "--points", "11", "--out", "{tmp}/cmp"],
    ["export-sbml", "-o", "{tmp}/out.xml"],
])
def test_commands_print_model_text_as_plain_text(terminal, hostile, tmp_path, command):
    args = [a.replace("{tmp}", str(tmp_path)) for a in command]
    code, output, exc = terminal(args[0], hostile, *args[1:])
    assert code == 0 and exc is None, output
    assert_plain(output)
    if args[0] == "show":
        assert_plain(output, LINK, "\\x1b[2J", "[blink]u[/blink]", "\\u202e", "\\x9b2J", "[/]", ":x:", "cost $\\frac{a$")


def test_run_prints_plain_text_and_its_figures_and_report_survive_the_text(terminal, hostile, tmp_path):
    code, output, exc = terminal("run", hostile, "--t-end", "50", "--points", "11", "--out", tmp_path / "run")
    assert code == 0 and exc is None, output
    assert_plain(output, LINK, "[blink]u[/blink]\\x1b[2J", "[red]2[/red]\\x1b[2J\\u202e")
    html = (tmp_path / "run" / "report.html").read_text(encoding="utf-8")
    assert "\x1b" not in html and "\u202e" not in html and "<script>" not in html
    assert "\\u202eright-to-left\\x0d\\x9b2J :x: &lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "[link=https://example.com]click me[/link] \\x1b]8;;https://evil.example/" in html
    assert (tmp_path / "run" / "figures").is_dir()


def test_the_real_command_on_a_forced_terminal(hostile):
    """The module's own consoles, in a child process with a colour terminal forced through the environment."""
    env = {"PYTHONPATH": str(Path(__file__).parents[1] / "src"), "FORCE_COLOR": "1", "TERM": "xterm-256color",
           "COLUMNS": "200", "PATH": "/usr/bin:/bin"}
    res = subprocess.run([sys.executable, "-m", "ilsim", "show", str(hostile)], env=env, capture_output=True)
    assert res.returncode == 0, res.stderr.decode()
    output = (res.stdout + res.stderr).decode()
    assert "\x1b[1m" in output  # the terminal was forced: Rich styled its own text
    assert_plain(output, LINK, "\\x1b[2J")


def test_errors_quoting_model_text_are_plain(terminal, hostile, tmp_path):
    bad = hostile.read_text(encoding="utf-8").replace("- consumes:\n    E: 1", '- consumes:\n    "[/]\\e[2J": 1', 1)
    assert bad != hostile.read_text(encoding="utf-8")
    path = tmp_path / "bad.yaml"
    path.write_text(bad, encoding="utf-8")
    for command in ("show", "validate", "run"):
        extra = ["--out", tmp_path / "never"] if command == "run" else []
        code, output, exc = terminal(command, path, *extra)
        assert code == 2 and "Traceback" not in output, output
        assert_plain(output, "[/]\\x1b[2J")
    assert not (tmp_path / "never").exists()


SBML = """<?xml version="1.0" encoding="UTF-8"?>
<sbml xmlns="http://www.sbml.org/sbml/level3/version2/core" level="3" version="2">
  <model id="m" name="[link=https://example.com]click me[/link] \u009b2J \u202e" timeUnits="{time}">
    <listOfCompartments><compartment id="c" size="1" constant="true" spatialDimensions="3"/></listOfCompartments>
    <listOfSpecies>
      <species id="X" name="[blink]X[/blink]\u202e" compartment="c" initialAmount="1" hasOnlySubstanceUnits="true"
               boundaryCondition="false" constant="false"/>
    </listOfSpecies>
    <listOfParameters><parameter id="k" name="[/] \u0085" value="0.1" constant="true"/></listOfParameters>
    <listOfReactions>
      <reaction id="r" name="decay [/]" reversible="false">
        <listOfReactants><speciesReference species="X" stoichiometry="1" constant="true"/></listOfReactants>
        <kineticLaw><math xmlns="http://www.w3.org/1998/Math/MathML"><apply><times/><ci>k</ci><ci>X</ci></apply></math></kineticLaw>
      </reaction>
    </listOfReactions>
  </model>
</sbml>
"""


def test_import_sbml_prints_plain_text(terminal, tmp_path):
    good = tmp_path / "good.xml"
    good.write_text(SBML.replace(' timeUnits="{time}"', ""), encoding="utf-8")
    code, output, exc = terminal("import-sbml", good, "-o", tmp_path / "good.yaml")
    assert code == 0 and exc is None, output
    assert_plain(output)
    code, output, exc = terminal("show", tmp_path / "good.yaml")
    assert code == 0, output
    assert_plain(output, LINK, "\\x9b2J", "[blink]X[/blink]\\u202e")
    bad = tmp_path / "bad.xml"  # an error message quoting the file's text
    bad.write_text(SBML.replace("{time}", "[/]\u009b2J"), encoding="utf-8")
    code, output, exc = terminal("import-sbml", bad, "-o", tmp_path / "bad.yaml")
    assert code == 2, output
    assert_plain(output, "[/]\\x9b2J")


def test_cohort_with_its_progress_bar_prints_plain_text(terminal, hostile, tmp_path):
    code, output, exc = terminal("cohort", hostile, "--patients", "30", "--seed", "1", "--vary", "c=uniform(0.02, 0.05)",
                                 "--t-end", "100", "--points", "21", "--out", tmp_path / "coh")
    assert code == 0 and exc is None, output
    assert "patients/s" in output  # the progress bar was drawn
    assert_plain(output, LINK, "[red]2[/red]\\x1b[2J\\u202e")
    html = (tmp_path / "coh" / "report.html").read_text(encoding="utf-8")
    assert "\x1b" not in html and "[red]2[/red]\\x1b[2J\\u202e" in html


def test_sweep_sensitivity_and_optimize_print_plain_text(terminal, hostile, tmp_path):
    fast = ["--t-end", "100", "--points", "21"]
    for args in (["sweep", hostile, "--param", "c=0.02:0.04:3", "--metric", "T.final", *fast, "--out", tmp_path / "sw"],
                 ["sensitivity", hostile, "--param", "c=0.02:0.04", "--param", "a=0.5:1.5", "--output", "T.final",
                  "--method", "morris", "--samples", "4", *fast, "--out", tmp_path / "sa"],
                 ["optimize", hostile, "--vary", "param:c=0.02,0.03", "--objective", "min:final(T)",
                  "--constraint", "peak(E) <= 1e12", *fast,
                  "--out", tmp_path / "opt"]):
        code, output, exc = terminal(*args)
        assert code == 0 and exc is None, output
        assert_plain(output, LINK) if args[0] != "optimize" else assert_plain(output)
    for name in ("sw", "sa"):
        html = (tmp_path / name / "report.html").read_text(encoding="utf-8")
        assert "\x1b" not in html and "[link=https://example.com]click me[/link]" in html
