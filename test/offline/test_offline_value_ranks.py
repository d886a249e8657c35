"""The rank correlation bench/offline_value.py judges the planner with."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).resolve().parents[2] / 'bench' / 'offline_value.py'


@pytest.fixture(scope='module')
def offline_value():
    spec = importlib.util.spec_from_file_location('offline_value', SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_spearman_is_one_for_any_increasing_map_and_minus_one_reversed(offline_value):
    x = np.array([0.3, -2.0, 5.0, 1.0, 0.0])
    assert offline_value.spearman(x, np.exp(x)) == pytest.approx(1.0)
    assert offline_value.spearman(x, -x ** 3) == pytest.approx(-1.0)


def test_spearman_gives_tied_values_their_average_rank(offline_value):
    # ranks of [1, 1, 2, 3] are [0.5, 0.5, 2, 3]: Pearson of those with 0..3 is 0.9487
    assert offline_value.spearman([1, 1, 2, 3], [1, 2, 3, 4]) == pytest.approx(0.9486833, abs=1e-6)
    assert list(offline_value._ranks(np.array([2.0, 1.0, 2.0]))) == [1.5, 0.0, 1.5]


def test_spearman_of_a_constant_is_undefined(offline_value):
    assert np.isnan(offline_value.spearman([1, 1, 1], [1, 2, 3]))
