"""The explorer in a real browser (headless Chromium): each number read off a page is checked against
ilsim.simulate for the same parameters, in this process.

The slider-to-plot latency is measured and reported (printed and written beside the screenshots), not
asserted: it depends on the machine and its load.
"""

from __future__ import annotations

import json
import re
import time

import numpy as np
import pytest

pytest.importorskip("dash", reason="the web explorer needs the 'web' extra (dash, plotly)")

import ilsim  # noqa: E402

SCENARIO = "infection-resolution"
TIMEOUT_MS = 90_000  # the first run of a page compiles the model


def _open(page, base: str, path: str = ""):
    page.goto(base + path)


def _wait_run(page, previous: str | None = None) -> str:
    """Wait until the page shows a finished run (other than ``previous``) and its plots; return its job id."""
    from playwright.sync_api import TimeoutError as Timeout

    try:
        page.wait_for_function(
            "prev => { const d = document.querySelector('#run-done'); return d && d.dataset.job !== prev; }",
            arg=previous, timeout=TIMEOUT_MS)
    except Timeout:
        raise AssertionError(f"no new run shown; the page says: {page.inner_text('.status-line')!r}, "
                             f"{page.inner_text('#changes')!r}") from None
    page.wait_for_function("() => { const g = [...document.querySelectorAll('.plots .dash-graph')]; "
                           "return g.length > 0 && g.every(x => x.querySelector('.main-svg .scatterlayer')); }",
                           timeout=TIMEOUT_MS)  # every panel drawn
    return page.get_attribute("#run-done", "data-job")


def _scenario_page(browser, base: str):
    """A fresh page on the scenario, its first run shown: (page, that run's job id)."""
    page = browser.new_page(viewport={"width": 1440, "height": 1000})
    _open(page, base, f"scenario/{SCENARIO}")
    return page, _wait_run(page)


def _move_slider(page, parameter: str, fraction: float) -> None:
    """Click a parameter's slider at ``fraction`` of its length (the handle jumps there, as under a mouse)."""
    rail = page.locator(f"#param-{parameter} .rc-slider-rail")
    handle = page.locator(f"#param-{parameter} .rc-slider-handle")
    before = handle.get_attribute("aria-valuenow")
    for _ in range(3):  # a click while the page is still laying out its plots can land before the rail settles
        rail.scroll_into_view_if_needed()
        box = rail.bounding_box()
        page.mouse.click(box["x"] + fraction * box["width"], box["y"] + box["height"] / 2)
        try:
            page.wait_for_function("([sel, old]) => document.querySelector(sel).getAttribute('aria-valuenow') !== old",
                                   arg=[f"#param-{parameter} .rc-slider-handle", before], timeout=5000)
            return
        except Exception:  # noqa: BLE001 - Playwright's timeout: click again
            continue
    raise AssertionError(f"the {parameter} slider did not move")


def _changes(page) -> dict:
    """The parameters the page says it changed: 'changed: a = 1.5, b = 2.0' -> {a: 1.5, b: 2.0}."""
    text = page.inner_text("#changes-text")
    return {m.group(1): float(m.group(2)) for m in re.finditer(r"(\w+) = ([-+0-9.eE]+)", text)}


def _value(page, name: str, key: str) -> float:
    return float(page.get_attribute(f"td[data-name='{name}'][data-key='{key}']", "data-value"))


def _oracle(parameters: dict, faults: dict | None = None, model: str = SCENARIO) -> dict:
    return ilsim.summarise(ilsim.simulate(model, parameters=parameters or None, faults=faults or None))


def test_pick_a_scenario_move_a_slider_and_read_back_what_simulate_gives(browser, explorer, shots):
    base, _app, _ = explorer
    page = browser.new_page(viewport={"width": 1440, "height": 1000})
    _open(page, base)
    page.wait_for_selector(".card")
    page.wait_for_selector(".thumb .main-svg", timeout=TIMEOUT_MS)
    page.screenshot(path=str(shots / "gallery.png"))
    page.click(f"#open-{SCENARIO}")
    job = _wait_run(page)
    intact = _oracle({})
    assert page.inner_text("#readout-outcome") == intact["outcome"]
    assert _value(page, "IL6", "peak") == pytest.approx(intact["variables"]["IL6"]["peak"], rel=1e-12)
    page.screenshot(path=str(shots / "scenario.png"))
    latencies = []
    for fraction in (0.75, 0.3, 0.9, 0.6):
        start = time.perf_counter()
        _move_slider(page, "s_IL6", fraction)
        job = _wait_run(page, job)
        latencies.append(time.perf_counter() - start)
        changed = _changes(page)
        assert set(changed) == {"s_IL6"}
        expected = _oracle(changed)
        for name in ("IL6", "CRP", "temperature"):
            assert _value(page, name, "peak") == pytest.approx(expected["variables"][name]["peak"], rel=1e-12)
        assert float(page.get_attribute("#readout-crp", "data-value")) == pytest.approx(
            expected["variables"]["CRP"]["peak"], rel=1e-12)
    page.screenshot(path=str(shots / "scenario-slider-moved.png"))
    # the first move may include a first compile of code paths; the later ones are what a user feels
    report = {"slider_to_plot_s": [round(x, 3) for x in latencies],
              "after_first_median_s": round(float(np.median(latencies[1:])), 3)}
    (shots / "latency.json").write_text(json.dumps(report, indent=2))
    print(f"\nslider -> plot latency (s): {report}")
    # only the chosen tab's panels are drawn; another tab draws the panels panel_tabs puts in it
    from ilsim.web.figures import panel_tabs, run_panels

    compiled = ilsim.compile(SCENARIO)
    tabs = panel_tabs(run_panels({"run": ilsim.simulate(compiled, parameters=changed)}, compiled), len(compiled.spec.plots))
    assert page.locator(".plots .dash-graph").count() == len(tabs[0][1])
    page.click("#plot-tab-2")
    page.wait_for_function("n => document.querySelectorAll('.plots .dash-graph .main-svg .scatterlayer').length === n "
                           "&& document.querySelectorAll('.plots .dash-graph').length === n",
                           arg=len(tabs[2][1]), timeout=TIMEOUT_MS)
    titles = page.evaluate("() => [...document.querySelectorAll('.plots .gtitle')].map(t => t.textContent)")
    assert titles == [run_panels({"run": ilsim.simulate(compiled, parameters=changed)}, compiled)[i].title for i in tabs[2][1]]
    page.close()


def test_a_fault_changes_the_outcome_label(browser, explorer, shots):
    page, job = _scenario_page(browser, explorer[0])
    from ilsim.web.narratives import narrative

    note = narrative(SCENARIO)  # the teaching notes are on the page, each curve and fault of the file
    curves = page.locator("#teaching li[data-curve]").evaluate_all("items => items.map(li => li.dataset.curve)")
    faults = page.locator("#teaching li[data-fault]").evaluate_all("items => items.map(li => li.dataset.fault)")
    assert set(curves) == note.named_curves() and set(faults) == set(note.faults) == {f.mode for f in ilsim.load(SCENARIO).faults}
    page.locator("#teaching").screenshot(path=str(shots / "teaching-notes.png"))
    intact, faulted = _oracle({})["outcome"], _oracle({}, {"stop-ignored": 1.0})["outcome"]
    assert intact != faulted  # the scenario's point: the stop signal ignored leaves chronic inflammation
    assert page.inner_text("#readout-outcome") == intact
    page.locator("#fault-on label", has_text="stop-ignored").locator("input").check()
    job = _wait_run(page, job)
    assert page.inner_text("#readout-outcome") == faulted
    page.locator("#overlay input").check()  # overlay the faulted variants: dashed curves beside the run's
    job = _wait_run(page, job)
    legend = page.inner_text(".plots")
    assert "stop-not-received" in legend and "false-alarm" in legend
    page.screenshot(path=str(shots / "scenario-fault-overlay.png"), full_page=True)
    page.locator("#overlay input").uncheck()
    job = _wait_run(page, job)
    page.click("#save")  # keep the faulted run, then switch the fault off: both are drawn
    job = _wait_run(page, job)
    assert page.inner_text("#saved-note") == "saved for comparison (changed: fault stop-ignored at 1): drawn dashed"
    page.locator("#fault-on label", has_text="stop-ignored").locator("input").uncheck()
    _wait_run(page, job)
    assert page.inner_text("#readout-outcome") == intact
    legend = page.inner_text(".plots")
    assert "(saved run)" in legend and "(this run)" in legend and "false-alarm" not in legend
    page.screenshot(path=str(shots / "scenario-saved-run.png"))
    page.close()


BROKEN = """\
metadata: {name: broken}
species:
  - {name: X, initial: 1}
parameters:
  - {name: k, value: 0.5, range: [1, 2]}
processes:
  - {name: decay, rate: "k*X", consumes: {X: 1}}
"""


def test_an_uploaded_broken_model_shows_the_message_at_its_field(browser, explorer, shots, tmp_path):
    base, _app, _ = explorer
    path = tmp_path / "broken.yaml"
    path.write_text(BROKEN)
    with pytest.raises(ilsim.ModelError) as direct:  # the oracle: the CLI's validation of the same file
        ilsim.compile(path)
    (problem,) = direct.value.problems
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    _open(page, base, "upload")
    page.set_input_files("#upload input[type=file]", str(path))
    item = page.locator(f"li.problem[data-field='{problem.field}']")
    item.wait_for(timeout=TIMEOUT_MS)
    assert problem.message in item.inner_text()
    assert "range: [1, 2]" in item.locator(".source-line").inner_text()  # the line of the file the field is on
    page.screenshot(path=str(shots / "upload-broken.png"))
    for name, data, words in (("../evil.yaml", BROKEN.encode(), "without folders"),
                              ("model.py", b"import os", "only model files"),
                              ("big.yaml", b"#" * 1_100_000, "larger than the limit")):
        page.set_input_files("#upload input[type=file]", files=[{"name": name, "mimeType": "text/plain", "buffer": data}])
        page.wait_for_function("w => (document.querySelector('#upload-refused') || {}).innerText?.includes(w)",
                               arg=words, timeout=TIMEOUT_MS)
    page.close()


def test_a_model_that_fails_to_integrate_shows_the_error_and_the_server_carries_on(browser, explorer, blowup_model, shots):
    base, _app, _ = explorer
    with pytest.raises(ilsim.SimulationError) as direct:
        ilsim.simulate(blowup_model)
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    _open(page, base, "upload")
    page.set_input_files("#upload input[type=file]", str(blowup_model))
    page.click("#open-upload", timeout=TIMEOUT_MS)
    page.wait_for_selector("#run-error", timeout=TIMEOUT_MS)
    assert page.inner_text("#run-error") == str(direct.value).replace(str(blowup_model), blowup_model.name)
    page.screenshot(path=str(shots / "run-failed.png"))
    _open(page, base, f"scenario/{SCENARIO}")
    _wait_run(page)  # the server carries on
    page.close()


def test_the_netcdf_download_is_the_run_on_screen(browser, explorer, tmp_path):
    import xarray as xr

    page, job = _scenario_page(browser, explorer[0])
    _move_slider(page, "r_P", 0.8)
    _wait_run(page, job)
    changed = _changes(page)
    with page.expect_download(timeout=TIMEOUT_MS) as download:
        page.click("button:has-text('NetCDF')")
    saved = tmp_path / download.value.suggested_filename
    download.value.save_as(saved)
    assert saved.suffix == ".nc" and saved.read_bytes()[:4] in (b"\x89HDF", b"CDF\x01", b"CDF\x02")
    with xr.open_dataset(saved) as ds:
        expected = ilsim.simulate(SCENARIO, parameters=changed)
        np.testing.assert_allclose(ds["P"].values, expected["P"].values, rtol=1e-12)
        assert ds.attrs["outcome"] == expected.attrs["outcome"]
    page.close()


def test_the_catalogue_is_searchable(browser, explorer, shots):
    from ilsim.biology.catalogue import load_catalogue

    base, _app, _ = explorer
    page = browser.new_page(viewport={"width": 1440, "height": 1000})
    _open(page, base, "interleukins")
    page.wait_for_selector("#catalogue td")
    page.screenshot(path=str(shots / "interleukins.png"))
    # the oracle: the same search done here on the catalogue (case-insensitive, in the effects' kinds and texts)
    fever = [il.name for il in load_catalogue() if any("fever" in f"{e.kind}: {e.description}".lower() for e in il.effects)]
    assert fever
    page.fill("#catalogue th.dash-filter[data-dash-column='effects'] input", "FeVer")
    page.keyboard.press("Enter")
    page.wait_for_timeout(500)
    shown = page.locator("#catalogue td[data-dash-column='name']").all_inner_texts()
    assert sorted(shown) == sorted(fever[:15])
    page.close()


def test_ten_sessions_at_once_each_see_their_own_run_and_the_server_answers(browser, explorer, shots):
    import threading
    import urllib.request

    base, _app, _ = explorer
    sessions = [browser.new_context(viewport={"width": 1280, "height": 900}) for _ in range(10)]
    pages = [context.new_page() for context in sessions]
    for page in pages:  # a smaller scenario than the other tests' (11 panels): ten pages draw at once on few cores
        _open(page, base, "scenario/reynolds-2006")
    jobs = [_wait_run(page) for page in pages]
    answered, stop = [], threading.Event()

    def probe():  # a request from outside the sessions, timed, while they run
        while not stop.is_set():
            start = time.perf_counter()
            with urllib.request.urlopen(base + "_dash-layout", timeout=30) as response:
                assert response.status == 200
            answered.append(time.perf_counter() - start)
            time.sleep(0.05)

    prober = threading.Thread(target=probe)
    prober.start()
    try:
        for i, page in enumerate(pages):  # every session moves the slider to a place of its own, none waits
            _move_slider(page, "kpg", 0.03 + 0.1 * i)  # never 0.5: the value as written
        jobs = [_wait_run(page, job) for page, job in zip(pages, jobs)]
    finally:
        stop.set()
        prober.join()
    chosen = [_changes(page) for page in pages]
    assert len({c["kpg"] for c in chosen}) == 10 and all(set(c) == {"kpg"} for c in chosen)
    for page, changed in zip(pages, chosen):  # each page shows the run of its own value, not another session's
        expected = _oracle(changed, model="reynolds-2006")
        for name in ("P", "N", "D"):
            assert _value(page, name, "peak") == pytest.approx(expected["variables"][name]["peak"], rel=1e-12)
    pages[-1].screenshot(path=str(shots / "session-10.png"))
    print(f"\nserver answers while 10 sessions run: {len(answered)} requests, slowest {max(answered):.3f} s")
    assert answered and max(answered) < 10  # responsive: no request waited on the sessions' runs
    for context in sessions:
        context.close()


def test_a_dose_added_in_the_editor_runs_as_simulate_with_that_dose(browser, explorer, shots):
    base, _app, _ = explorer
    page = browser.new_page(viewport={"width": 1440, "height": 1000})
    _open(page, base, "scenario/aldesleukin")
    job = _wait_run(page)
    page.fill("#dose-amount", "100000")
    page.fill("#dose-start", "250")
    page.locator("#dose-route label", has_text="iv_bolus").locator("input").check()
    page.click("#dose-add")
    job = _wait_run(page, job)
    dose = {"drug": "aldesleukin", "route": "iv_bolus", "amount": 100000.0, "units": "IU/kg", "start": 250.0}
    assert "dose drug=aldesleukin route=iv_bolus amount=100000" in page.inner_text("#changes-text")
    expected = ilsim.summarise(ilsim.simulate("aldesleukin", doses=[dose]))["variables"]
    shown = page.evaluate("() => [...document.querySelectorAll('td[data-key=peak]')].map(td => [td.dataset.name, "
                          "td.dataset.value])")
    assert len(shown) == len(expected)
    for name, value in shown:  # every variable's peak, as the library gives it for the same dose
        assert (None if value == "None" else float(value)) == pytest.approx(expected[name]["peak"], rel=1e-12), name
    page.screenshot(path=str(shots / "dose-added.png"))
    page.close()


def _choose(page, dropdown: str, option: str) -> None:
    """Pick an option of a Dash dropdown as a user does: open it, type, click the option."""
    page.click(dropdown)
    page.keyboard.type(option.rstrip(" ("))
    page.locator(f"{dropdown} .Select-menu-outer").get_by_text(option).first.click(timeout=TIMEOUT_MS)


def test_a_cohort_launched_from_the_page_has_the_outcomes_of_ilsim_cohort(browser, explorer, shots):
    from ilsim.web.launch import cohort_request

    base, _app, _ = explorer
    page = browser.new_page(viewport={"width": 1440, "height": 1000})
    _open(page, base, "results")
    _choose(page, "#launch-model", "reynolds-2006")
    _choose(page, "#launch-params", "kpg (")
    page.wait_for_selector("#launch-params .Select-value-label:has-text('kpg')")
    page.fill("#launch-size", "30")
    page.fill("#launch-seed", "11")
    page.click("#launch-go")
    page.wait_for_selector("#launch-done, #launch-error, #launch-cancelled", timeout=TIMEOUT_MS)
    assert page.locator("#launch-done").count() == 1, page.inner_text("#launch-status")
    shown = {row.get_attribute("data-outcome"): int(row.get_attribute("data-count"))
             for row in page.locator("#launch-outcome-table tr.outcome-count").all()}
    # the oracle: the library's cohort with the same model, varied parameter (over the slider's span), size and seed
    request = cohort_request("reynolds-2006", ["kpg"], 30, 11)
    low, high = next(p for p in ilsim.load("reynolds-2006").parameters if p.name == "kpg").span()
    assert request["vary"] == [f"kpg=uniform({low!r}, {high!r})"]
    expected = ilsim.cohort("reynolds-2006", patients=30, seed=11, vary=request["vary"], report=False)
    assert shown == expected["outcome"].astype(str).value_counts().to_dict()
    assert sum(shown.values()) == 30
    page.wait_for_selector("#launch-outcome-fractions .main-svg", timeout=TIMEOUT_MS)  # drawn after the table
    page.screenshot(path=str(shots / "cohort-launched.png"), full_page=True)
    page.close()


def test_a_tissue_result_folder_shows_its_animation_snapshots_and_counts(browser, explorer, shots):
    import base64
    import json as _json

    base, _app, results = explorer
    folder = results / "niche"
    ilsim.tissue("il2-niche", folder, t_end=20, save_every=10)  # a short run: a real folder as `ilsim tissue` writes it
    summary = _json.loads((folder / "summary.json").read_text())
    page = browser.new_page(viewport={"width": 1440, "height": 1000})
    _open(page, base, "results")
    _choose(page, "#result-choice", "niche (tissue)")
    page.wait_for_selector("#tissue-summary", timeout=TIMEOUT_MS)
    shown = page.inner_text("#tissue-summary")
    for cell_type, count in summary["final_cells"].items():  # the counts the run wrote
        assert f"{cell_type} {count:,}" in shown
    animation = next((folder / "figures").glob("animation.*"))
    for ident, path in (("#tissue-snapshots", folder / "figures" / "snapshots.png"), ("#tissue-animation", animation)):
        src = page.get_attribute(ident, "src")
        assert base64.b64decode(src.partition(",")[2]) == path.read_bytes()  # the figure the folder holds, whole
    assert page.evaluate("() => document.querySelector('#tissue-snapshots').naturalWidth") > 0  # decoded by the browser
    page.screenshot(path=str(shots / "tissue.png"), full_page=True)
    page.close()
