"""The shared-data rule: a test whose data (../shared/data) is missing fails in CI and is skipped elsewhere."""

import pytest

MISSING = "no-such-folder-kept-for-this-test"


def test_missing_data_fails_in_ci(shared_data, monkeypatch):
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI=true, so this test fails instead of skipping"):
        shared_data(MISSING)


@pytest.mark.parametrize("ci", ["", "false"])
def test_missing_data_is_skipped_outside_ci_with_the_path(shared_data, monkeypatch, ci):
    monkeypatch.setenv("CI", ci)
    with pytest.raises(pytest.skip.Exception, match=f"shared test data not found: .*{MISSING}"):
        shared_data(MISSING)


def test_a_pattern_that_matches_nothing_counts_as_missing(shared_data, monkeypatch):
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match=r"BIOMD9999999999__\*\.xml"):
        shared_data("biomodels/models", "BIOMD9999999999__*.xml")
