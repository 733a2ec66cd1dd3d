"""Crafted SBML files cannot crash or exhaust the process that reads them: each gets a ModelError naming the
file. Files that used to kill the interpreter inside libsbml are read in a child process here, so that a
regression fails this test instead of ending the test run; the oracle is the child's exit status and message.
"""

import subprocess
import sys
import textwrap
import time

import pytest

import ilsim

HEAD = '<?xml version="1.0" encoding="UTF-8"?>\n'
CORE = "http://www.sbml.org/sbml/level3/version2/core"


def sbml(model_body: str, namespace: str = CORE, attributes: str = 'level="3" version="2"') -> str:
    return f'{HEAD}<sbml xmlns="{namespace}" {attributes}><model id="m">{model_body}</model></sbml>\n'


PARAMETER = '<listOfParameters><parameter id="k" constant="true"/></listOfParameters>'


def assignment(math: str) -> str:
    """A model whose parameter k is set by an initial assignment with the given MathML content."""
    return (f'{PARAMETER}<listOfInitialAssignments><initialAssignment symbol="k">'
            f'<math xmlns="http://www.w3.org/1998/Math/MathML">{math}</math></initialAssignment></listOfInitialAssignments>')


def load_in_child(path) -> subprocess.CompletedProcess:
    code = textwrap.dedent(f"""
        import ilsim
        try:
            ilsim.load({str(path)!r})
        except ilsim.IlsimError as exc:
            print("refused:", str(exc)[:3000])
        else:
            print("loaded")
    """)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def test_mathml_nested_thousands_deep_is_refused_before_libsbml_sees_it(tmp_path):
    depth = 5000  # libsbml's recursive MathML reader overflowed its stack here (a segmentation fault)
    math = "<apply><plus/><cn>1</cn>" * depth + "<cn>1</cn>" + "</apply>" * depth
    path = tmp_path / "deep.xml"
    path.write_text(sbml(assignment(math)))
    done = load_in_child(path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith(f"refused: {path}: line ") and "nested more than 100 deep" in done.stdout


@pytest.mark.parametrize("namespace, attributes", [
    ("http://www.sbml.org/sbml/level3/version9/core", 'level="3" version="9"'),
    ("http://www.sbml.org/sbml/level9/version1/core", 'level="9" version="1"'),
    (CORE, 'level="1" version="2"'),
    ("urn:not-sbml", ""),
    (CORE, 'level="3" version="2" xmlns:fbc="http://www.sbml.org/sbml/level3/version1/fbc/version9" fbc:required="true"'),
])
def test_bad_namespaces_levels_and_packages_give_a_clear_error(tmp_path, namespace, attributes):
    path = tmp_path / "bad.xml"
    path.write_text(sbml(PARAMETER, namespace, attributes))
    assert len(path.read_bytes()) < 400
    done = load_in_child(path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith(f"refused: {path}"), done.stdout


def test_a_document_type_declaration_with_entities_is_refused(tmp_path):
    lol = "".join(f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, 10))
    path = tmp_path / "laughs.xml"
    path.write_text(f'{HEAD}<!DOCTYPE sbml [<!ENTITY lol0 "lol">{lol}]>\n<sbml xmlns="{CORE}" level="3" version="2">'
                    f'<model id="m"><notes>&lol9;</notes></model></sbml>\n')
    with pytest.raises(ilsim.ModelError, match="document type declaration"):
        ilsim.load(path)


def test_malformed_xml_is_named_with_its_line(tmp_path):
    path = tmp_path / "broken.xml"
    path.write_text(sbml(PARAMETER).replace("</model>", "</modle>"))
    with pytest.raises(ilsim.ModelError, match=r"broken.xml: line 2: not valid XML: mismatched tag"):
        ilsim.load(path)


def doubling_functions(levels: int) -> str:
    """f0(x) = x; f_k(x) = f_{k-1}(x) + f_{k-1}(x), so f_k(x) = 2**k x, and its inlined formula has 2**k leaves."""
    def lam(body: str) -> str:
        return f'<math xmlns="http://www.w3.org/1998/Math/MathML"><lambda><bvar><ci>x</ci></bvar>{body}</lambda></math>'

    defs = [f'<functionDefinition id="f0">{lam("<ci>x</ci>")}</functionDefinition>']
    for k in range(1, levels + 1):
        call = f"<apply><ci>f{k - 1}</ci><ci>x</ci></apply>"
        defs.append(f'<functionDefinition id="f{k}">{lam(f"<apply><plus/>{call}{call}</apply>")}</functionDefinition>')
    return f"<listOfFunctionDefinitions>{''.join(defs)}</listOfFunctionDefinitions>"


def test_function_definitions_are_inlined_exactly_while_small(tmp_path):
    path = tmp_path / "doubling.xml"
    path.write_text(sbml(doubling_functions(6) + assignment("<apply><ci>f6</ci><cn>1.5</cn></apply>")))
    compiled = ilsim.compile(ilsim.load(path))
    assert compiled.p0[compiled.parameters.index("k")] == 2**6 * 1.5


def test_function_definitions_that_double_at_each_level_stop_at_the_size_limit(tmp_path):
    path = tmp_path / "doubling.xml"
    path.write_text(sbml(doubling_functions(29) + assignment("<apply><ci>f29</ci><cn>1</cn></apply>")))
    assert path.stat().st_size < 12_000
    start = time.perf_counter()
    with pytest.raises(ilsim.ModelError, match=r"more than 100,000 nodes once its function definitions are inlined "
                                               r"\(f29 -> f28 -> f27"):
        ilsim.load(path)
    assert time.perf_counter() - start < 30  # 2**29 leaves would take hours
