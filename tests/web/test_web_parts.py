"""The web explorer's server side without a browser: upload checks, problems placed at their line, the run
cache and cancel, the result-folder listing, `ilsim serve`'s options."""

from __future__ import annotations

import base64
import threading

import numpy as np
import pytest

pytest.importorskip("dash", reason="the web explorer needs the 'web' extra (dash, plotly)")

import ilsim  # noqa: E402
from ilsim.errors import ModelError  # noqa: E402
from ilsim.web.jobs import Runner  # noqa: E402
from ilsim.web.models import MAX_UPLOAD_BYTES, Models, UploadRefused, check_name, decode, field_line  # noqa: E402
from ilsim.web.results import result_folders, result_view  # noqa: E402


def _contents(data: bytes) -> str:
    return "data:application/octet-stream;base64," + base64.b64encode(data).decode()


@pytest.mark.parametrize("name", ["../model.yaml", "a/b.yaml", "a\\b.yaml", "model.py", "notes.txt", "", "x..yaml"])
def test_upload_names_with_folders_or_other_types_are_refused(name):
    with pytest.raises(UploadRefused):
        check_name(name)


def test_upload_too_large_or_not_text_is_refused():
    with pytest.raises(UploadRefused, match="larger than the limit"):
        decode(_contents(b"a" * (MAX_UPLOAD_BYTES + 1)))
    with pytest.raises(UploadRefused, match="not UTF-8"):
        decode(_contents(b"\xff\xfe\x00binary"))
    assert decode(_contents(b"metadata: {name: m}")) == b"metadata: {name: m}"


BROKEN = """\
metadata: {name: broken}
species:
  - {name: X, initial: 1}
parameters:
  - {name: k, value: 0.5}
  - {name: j, value: 2, range: [3, 4]}
processes:
  - {name: decay, rate: "k*Y", consumes: {X: 1}}
"""


def test_upload_problems_are_the_compilers_and_point_at_their_line(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text(BROKEN)
    with pytest.raises(ModelError) as direct:  # the oracle: what `ilsim validate` reports for the same file
        ilsim.compile(path)
    with pytest.raises(ModelError) as uploaded:
        Models(tmp_path / "server").upload("broken.yaml", _contents(BROKEN.encode()))
    assert [(p.field, p.message) for p in uploaded.value.problems] == [(p.field, p.message) for p in direct.value.problems]
    assert all(p.source == "broken.yaml" for p in uploaded.value.problems)  # the user's name, not the server's file
    assert list((tmp_path / "server").iterdir()) == []  # the server keeps no user file
    lines = BROKEN.splitlines()
    for p in uploaded.value.problems:
        line = field_line(BROKEN, p.field)
        assert line is not None
        top = p.field.split("[")[0].split(".")[0]
        wanted = {"parameters": "range: [3, 4]", "processes": "k*Y"}[top]
        assert wanted in lines[line - 1]


def test_an_uploaded_model_runs_as_the_file_does(tmp_path):
    text = BROKEN.replace(', range: [3, 4]', '').replace("k*Y", "k*X")
    key, uploaded = Models(tmp_path).upload("fixed.yaml", _contents(text.encode()))
    path = tmp_path / "fixed.yaml"
    path.write_text(text)
    runner = Runner(workers=1)
    job = runner.wait(runner.submit(key, uploaded.compiled, {"k": 0.25}, {}), timeout=30)
    ds, summary = job.future.result()
    expected = ilsim.simulate(path, parameters={"k": 0.25})
    assert (ds["X"].values == expected["X"].values).all()


def test_identical_runs_come_from_the_cache_and_differing_ones_do_not():
    compiled = ilsim.compile("reynolds-2006")
    runner = Runner(workers=2)
    first = runner.wait(runner.submit("builtin:reynolds-2006", compiled, {}, {}), timeout=60)
    again = runner.wait(runner.submit("builtin:reynolds-2006", compiled, {}, {}), timeout=60)
    assert runner.integrations == 1 and again.future is first.future
    name = compiled.spec.parameters[0].name
    other = runner.wait(runner.submit("builtin:reynolds-2006", compiled, {name: compiled.spec.parameters[0].value * 1.5}, {}),
                        timeout=60)
    assert runner.integrations == 2 and other.state() == "done"
    assert not (other.future.result()[0]["P"].values == first.future.result()[0]["P"].values).all()


def test_a_cancelled_run_waiting_in_the_queue_never_integrates():
    compiled = ilsim.compile("reynolds-2006")
    runner = Runner(workers=1)
    release = threading.Event()
    runner._pool.submit(release.wait)  # the only worker is busy: the next run waits in the queue
    job_id = runner.submit("builtin:reynolds-2006", compiled, {}, {})
    runner.cancel(job_id)
    release.set()
    job = runner.wait(job_id, timeout=5)
    assert job.state() == "cancelled" and job.future.cancelled() and runner.integrations == 0
    fresh = runner.wait(runner.submit("builtin:reynolds-2006", compiled, {}, {}), timeout=60)  # not served a cancelled one
    assert fresh.state() == "done" and runner.integrations == 1


def test_a_run_that_fails_reports_its_error_and_is_not_cached(blowup_model):
    compiled = ilsim.compile(blowup_model)
    with pytest.raises(ilsim.SimulationError) as direct:
        ilsim.simulate(compiled)
    runner = Runner(workers=1)
    job = runner.wait(runner.submit("upload:x", compiled, {}, {}), timeout=60)
    assert job.state() == "failed" and str(job.future.exception()) == str(direct.value)
    again = runner.wait(runner.submit("upload:x", compiled, {}, {}), timeout=60)
    assert again.future is not job.future and runner.integrations == 2


def test_result_folders_lists_finished_results_only_and_opens_only_listed_names(tmp_path):
    (tmp_path / "c1").mkdir()
    (tmp_path / "c1" / "cohort.json").write_text("{}")
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "sweep.json").write_text("{}")  # no sweep.parquet: not a finished result
    import pandas as pd

    pd.DataFrame({"outcome": ["a", "b", "a"], "X.peak": [1.0, 2.0, 3.0]}).to_parquet(tmp_path / "c1" / "summary.parquet")
    assert result_folders(tmp_path) == [("c1", "cohort")]
    assert result_view(tmp_path, "../c1") is None and result_view(tmp_path, "half") is None
    view = result_view(tmp_path, "c1")
    assert "cohort of 3 patients" in str(view)


def test_links_leading_outside_the_results_root_are_not_listed(tmp_path):
    import pandas as pd

    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "cohort.json").write_text("{}")
    pd.DataFrame({"outcome": ["a"], "X.peak": [1.0]}).to_parquet(outside / "summary.parquet")
    root = tmp_path / "results"
    root.mkdir()
    (root / "linked").symlink_to(outside, target_is_directory=True)  # a folder link out of the root
    (root / "mixed").mkdir()
    (root / "mixed" / "cohort.json").write_text("{}")
    (root / "mixed" / "summary.parquet").symlink_to(outside / "summary.parquet")  # one file linked out
    (root / "inner").mkdir()
    (root / "inner" / "cohort.json").write_text("{}")
    pd.DataFrame({"outcome": ["b"], "X.peak": [2.0]}).to_parquet(root / "inner" / "summary.parquet")
    (root / "alias").symlink_to(root / "inner", target_is_directory=True)  # a link that stays under the root
    assert result_folders(root) == [("alias", "cohort"), ("inner", "cohort")]
    assert result_view(root, "linked") is None and result_view(root, "mixed") is None


def test_a_damaged_result_folder_is_reported_not_raised(tmp_path):
    import pandas as pd

    from ilsim.web.results import result_view

    (tmp_path / "c1").mkdir()
    (tmp_path / "c1" / "cohort.json").write_text("{damaged")
    pd.DataFrame({"outcome": ["a"], "X.peak": [1.0]}).to_parquet(tmp_path / "c1" / "summary.parquet")
    (tmp_path / "t1").mkdir()
    (tmp_path / "t1" / "summary.json").write_text("{}")
    (tmp_path / "t1" / "timeseries.csv").write_bytes(b"\x00\x01")
    for name in ("c1", "t1"):
        view = result_view(tmp_path, name)
        assert view.id == "result-unreadable" and f"{name}: cannot be shown" in str(view.children)


def test_serve_refuses_a_bad_port_and_folder(cli, refused, tmp_path):
    refused(cli("serve", "--port", "http", "--no-browser"), "--port must be a port number")
    refused(cli("serve", "--port", "70000", "--no-browser"), "--port must be a port number")
    refused(cli("serve", "--results", tmp_path / "none", "--no-browser"), "no such folder")


def test_serve_refuses_an_unknown_host_and_a_port_in_use(cli, refused):
    import socket

    refused(cli("serve", "--host", "no-such-host.invalid", "--no-browser"), "cannot serve on no-such-host.invalid")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        refused(cli("serve", "--port", port, "--no-browser"), f"cannot serve on 127.0.0.1:{port}", "in use")


def test_thinned_curves_keep_every_peak_trough_and_end():
    from ilsim.web.figures import shown_points

    t = np.linspace(0, 50, 5001)
    y = np.sin(t) * np.exp(-t / 20) + 0.01 * np.sin(37 * t)
    at = shown_points(y, most=600)
    assert len(at) <= 602 and at[0] == 0 and at[-1] == len(y) - 1 and np.all(np.diff(at) > 0)
    assert y[at].max() == y.max() and y[at].min() == y.min()
    smooth = np.sin(t) * np.exp(-t / 20)  # every peak and trough of a damped sine (one per stretch at most) is drawn
    turns = np.flatnonzero(np.diff(np.sign(np.diff(smooth))) != 0) + 1
    assert len(turns) > 10 and set(turns) <= set(shown_points(smooth, most=600))
    assert list(shown_points(y[:100], most=600)) == list(range(100))


def test_downloads_are_the_run_in_each_format(tmp_path):
    import pandas as pd

    from ilsim.io.results import write_csv
    from ilsim.web.app import _file

    compiled = ilsim.compile("reynolds-2006")
    ds = ilsim.simulate(compiled, parameters={"kpg": 0.5})
    summary = ilsim.summarise(ds)
    files = {what: _file(what, ds, summary, compiled, "reynolds") for what in ("csv", "png", "svg", "report")}
    write_csv(ds, tmp_path / "cli.csv")  # the oracle: the CSV `ilsim run` writes for the same run
    (tmp_path / "web.csv").write_bytes(base64.b64decode(files["csv"]["content"]))
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "web.csv"), pd.read_csv(tmp_path / "cli.csv"))
    assert files["csv"]["filename"] == "reynolds.csv"
    assert base64.b64decode(files["png"]["content"])[:8] == b"\x89PNG\r\n\x1a\n"
    assert b"<svg" in base64.b64decode(files["svg"]["content"])[:2000]
    report = base64.b64decode(files["report"]["content"]).decode()
    assert ds.attrs["title"].split(":")[0] in report and "data:image/png;base64," in report


def test_a_sweep_folder_shows_its_outcome_map(tmp_path):
    import json

    import pandas as pd

    folder = tmp_path / "s1"
    folder.mkdir()
    grid = {"a": [1.0, 2.0], "b": [10.0, 20.0]}
    table = pd.DataFrame({"a": [1.0, 1.0, 2.0, 2.0], "b": [10.0, 20.0, 10.0, 20.0], "outcome": ["x", "y", "y", "y"]})
    table.to_parquet(folder / "sweep.parquet")
    (folder / "sweep.json").write_text(json.dumps({"grid": grid}))
    view = result_view(tmp_path, "s1")
    heatmap = next(c.figure for c in _walk(view) if getattr(c, "id", None) == "outcome-map")
    trace = heatmap.data[0]
    labels = list(trace.colorbar.ticktext)
    assert [labels[int(z)] for z in trace.z] == table["outcome"].tolist()  # each grid point coloured by its own label


def _walk(component):
    yield component
    children = getattr(component, "children", None)
    for child in children if isinstance(children, list) else [children] if children is not None else []:
        if hasattr(child, "children") or hasattr(child, "figure"):
            yield from _walk(child)


def test_an_uploaded_sbml_file_runs_as_ilsim_load_reads_it(tmp_path):
    from ilsim.io.sbml import to_string

    text, _ = to_string(ilsim.compile("reynolds-2006"))
    path = tmp_path / "reynolds.xml"
    path.write_text(text)
    key, uploaded = Models(tmp_path / "server").upload("reynolds.xml", _contents(text.encode()))
    runner = Runner(workers=1)
    ds, _ = runner.wait(runner.submit(key, uploaded.compiled, {}, {}), timeout=60).future.result()
    expected = ilsim.simulate(path)  # the oracle: the same file read by ilsim.load
    assert list(ds.data_vars) == list(expected.data_vars)
    np.testing.assert_array_equal(ds["P"].values, expected["P"].values)


def test_ilsim_serve_starts_on_a_free_port_and_warns_off_the_loopback_address():
    import os
    import re
    import subprocess
    import sys
    import urllib.request
    from pathlib import Path

    src = str(Path(ilsim.__file__).resolve().parents[1])  # the ilsim under test, whether installed or from src/
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}
    # "localhost" is another name than 127.0.0.1, so it warns, and it still binds the loopback interface only
    server = subprocess.Popen([sys.executable, "-m", "ilsim", "serve", "--host", "localhost", "--no-browser"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**env, "COLUMNS": "300"})
    try:
        line = server.stdout.readline()
        found = re.search(r"http://localhost:\d+/", line)
        assert found, line
        with urllib.request.urlopen(found.group(0) + "_dash-layout", timeout=30) as response:
            assert response.status == 200 and b"ilsim explorer" in response.read()
    finally:
        server.terminate()
        _, err = server.communicate(timeout=30)
    assert "warning: serving on localhost" in err and "Traceback" not in err
