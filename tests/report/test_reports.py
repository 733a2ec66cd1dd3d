"""HTML reports a reader can take in: generated dose bookkeeping folded away, long lines wrapped, the outcome's rule."""

from __future__ import annotations

import re

import ilsim
from ilsim.io.results import summarise
from ilsim.report import html, text


def test_generated_dose_events_are_folded_and_the_models_own_are_not():
    model = ilsim.compile("aldesleukin")
    page = html.render(model, summarise(ilsim.simulate(model)), [])
    generated = [ev.name for ev in model.events if ev.name.startswith("dose ")]
    assert len(generated) > 100  # the labelled schedule, expanded
    events = page[page.index("<h3>Events</h3>"):]
    fold = re.search(r"<details><summary>(\d+) events generated from the doses.*?</details>", events, re.S)
    assert fold and int(fold.group(1)) == len(generated)
    folded_lines = fold.group(0).split("<pre>")[1].split("</pre>")[0].strip().splitlines()
    assert len(folded_lines) == len(generated)
    # the events fired and the dose log (57 rows each) are folded too, behind a count
    assert re.search(r"<details><summary>\d+ events fired", page) and re.search(r"<details><summary>\d+ doses", page)
    assert "white-space:pre-wrap" in page and "overflow-wrap:anywhere" in page  # equations wrap inside the page


def test_a_model_without_generated_events_shows_them_unfolded_with_its_outcome_rule():
    model = ilsim.compile("infection-resolution")
    summary = summarise(ilsim.simulate(model))
    page = html.render(model, summary, [])
    assert "events generated from the doses" not in page
    assert summary["outcome_rule"] and f"<span class='muted'>{summary['outcome_rule'].replace('<', '&lt;')}" in page
    rules = text.outcome_lines(model)
    assert rules[-1].startswith("undetermined: no rule above held")
    assert len(rules) == len(model.spec.outcomes) + 1
