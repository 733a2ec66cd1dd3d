"""A small Dask cluster for the tests that run cohorts, sweeps and sensitivity analyses on one."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def client():
    """A client of a local cluster of two single-threaded worker processes (started once per test module); not
    the default client, as with ``--scheduler``, so nothing may rely on one."""
    distributed = pytest.importorskip("dask.distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster:
        with distributed.Client(cluster, set_as_default=False) as c:
            yield c


@pytest.fixture
def unreachable() -> str:
    """The address of a port where no scheduler listens."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{s.getsockname()[1]}"
