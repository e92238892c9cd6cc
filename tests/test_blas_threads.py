"""numpy's BLAS threads in the serving processes: one by default under `serve` and `worker`,
left alone elsewhere (tests, training from the command line), a bad setting named."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import REPO_ROOT

PROBE = """
import numpy
from threadpoolctl import threadpool_info
from beacon.blas_threads import limit_for_serving
before = max(i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas")
limit = limit_for_serving()
after = max(i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas")
print(limit, after == (before if limit is None else limit))
"""


@pytest.mark.parametrize("setting, expected", [(None, "None True"), ("0", "None True"),
                                               ("1", "1 True"), ("many", "1 True")])
def test_the_blas_limit_follows_the_setting(setting: str | None, expected: str) -> None:
    env = {k: v for k, v in os.environ.items() if k != "BEACON_BLAS_THREADS"}
    if setting is not None:
        env["BEACON_BLAS_THREADS"] = setting
    env["PYTHONPATH"] = str(REPO_ROOT)
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=REPO_ROOT, env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == expected
    if setting == "many":
        assert "BEACON_BLAS_THREADS='many' is not a number of threads" in out.stderr
