"""LSODA runs in several threads at once (the web explorer's workers) leave standard output as it was: ODEPACK's
printing is silenced on one shared descriptor, restored by the last run to leave."""

from __future__ import annotations

import os
import sys
import warnings
from concurrent.futures import ThreadPoolExecutor

import ilsim


def test_concurrent_lsoda_runs_restore_standard_output():
    fd = sys.stdout.fileno()
    before = os.fstat(fd)
    with warnings.catch_warnings():  # the scenario's documented unit warnings
        warnings.simplefilter("ignore")
        compiled = ilsim.compile("infection-resolution")
    expected = ilsim.simulate(compiled)["IL6"].values
    with ThreadPoolExecutor(8) as pool:
        runs = list(pool.map(lambda _: ilsim.simulate(compiled, method="LSODA")["IL6"].values, range(48)))
    after = os.fstat(fd)
    assert (after.st_dev, after.st_ino) == (before.st_dev, before.st_ino)  # not left pointing at /dev/null
    assert all((run == expected).all() for run in runs)  # and the threads did not disturb each other's results
