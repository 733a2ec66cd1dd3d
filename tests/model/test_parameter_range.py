"""A parameter's optional `range:` (the span the web explorer's slider covers): validated at its field."""

from __future__ import annotations

import pytest

from ilsim.errors import ModelError
from ilsim.model.load import spec_from_dict


def _parameter(**fields):
    return spec_from_dict({"metadata": {"name": "r"}, "parameters": [{"name": "k", **{"value": 5.0, **fields}}]},
                          "r.yaml").parameters[0]


@pytest.mark.parametrize("bad, words", [
    ([0, 1], "must contain the value 5"),
    ([9, 3], "finite low < high"),
    ([2, float("inf")], "finite low < high"),
])
def test_a_bad_range_is_refused_at_its_field(bad, words):
    with pytest.raises(ModelError) as caught:
        _parameter(range=bad)
    (problem,) = caught.value.problems
    assert problem.field == "parameters[0].range" and words in problem.message and problem.source == "r.yaml"


def test_range_needs_two_numbers():
    with pytest.raises(ModelError) as caught:
        _parameter(range=["a", 9])
    assert caught.value.problems[0].field == "parameters[0].range[0]"


def test_span_is_the_range_or_a_span_centred_on_the_value():
    assert _parameter(range=[1, 9]).span() == (1.0, 9.0)
    low, high = _parameter().span()
    assert (low + high) / 2 == 5.0 and low == 0.0  # centred on the value, never below 0 for a positive value
    assert _parameter(value=0.0).span() == (0, 1)
    assert _parameter(value=-2.0).span() == (-4, 0)
