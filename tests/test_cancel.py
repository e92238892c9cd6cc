"""Cancelling a training: from another caller (the flag in the database), from the CLI, by
SIGTERM to the CLI and to a process that trains in the background (the console)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from beacon import training
from beacon.actions import PermissionDenied
from beacon.config import ModelConfig
from beacon.demo import load_demo_data
from beacon.errors import BeaconError
from data_access import audit, models_store, runs
from tests.auth_support import ADMIN, OPERATOR, REPO, VIEWER
from tests.test_console_ops import wait_for

#: small batches and many epochs: long enough to be cancelled on any machine
LONG = ModelConfig(dim=8, epochs=400, patience=400, batch_size=16, negatives=2, refit=False,
                   device="cpu")
DEMO = dict(users=60, events=40, days=10, seed=3)


@pytest.fixture
def platform(db: str) -> str:
    load_demo_data(**DEMO, actor=ADMIN)
    first = training.train(force=True, config=ModelConfig(dim=8, epochs=1, refit=False,
                                                          device="cpu"), actor=ADMIN)
    assert first.status == "trained"
    return db


def _running_epoch(run_id: int) -> bool:
    run = runs.get_run(run_id)
    return run is not None and run.status == "running" and (run.epoch or 0) >= 1


def test_an_operator_cancels_a_running_training(platform: str) -> None:
    active = models_store.active_global_id()
    run_id = training.start_training_in_background(force=True, config=LONG, actor=ADMIN)
    wait_for(lambda: _running_epoch(run_id))
    with pytest.raises(PermissionDenied):
        training.cancel_training(actor=VIEWER)
    flagged = training.cancel_training(actor=OPERATOR)
    assert flagged.id == run_id and flagged.cancel_requested_by == OPERATOR.name
    result = training.background_result(run_id, timeout=60)
    assert result.status == "cancelled" and OPERATOR.name in result.reason
    final = runs.get_run(run_id)
    assert final.status == "cancelled" and final.epoch < LONG.epochs
    assert runs.running_run("global") is None, "the lock is free"
    assert models_store.active_global_id() == active, "the active model is untouched"
    (row,) = audit.entries(action="cancel_training", outcome="ok")
    assert row.who == OPERATOR.name and row.params == {}
    (ended,) = audit.entries(action="train", outcome="failed")  # the run ADMIN started
    assert ended.who == ADMIN.name and ended.params["run_id"] == run_id
    assert ended.params["result"] == "cancelled" and OPERATOR.name in ended.error
    with pytest.raises(BeaconError, match="no training is running"):
        training.cancel_training(actor=OPERATOR)
    with pytest.raises(BeaconError, match="already cancelled"):
        training.cancel_training(run_id=run_id, actor=OPERATOR)


def _cli(*args: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "beacon", *args], cwd=REPO,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)


def test_train_cancel_from_the_command_line(platform: str) -> None:
    run_id = training.start_training_in_background(force=True, config=LONG, actor=ADMIN)
    wait_for(lambda: _running_epoch(run_id))
    out, err = _cli("train", "--cancel", "--json").communicate(timeout=120)
    assert f'"run_id": {run_id}' in out, err
    assert training.background_result(run_id, timeout=60).status == "cancelled"
    assert runs.get_run(run_id).reason.startswith("cancelled by cli:")


def test_sigterm_to_the_cli_cancels_its_training_and_exits(platform: str) -> None:
    load_demo_data(users=400, events=200, days=30, seed=4, replace=True, actor=ADMIN)
    process = _cli("train", "--force", "--json")
    try:
        run = wait_for(lambda: runs.running_run("global"), timeout=120)
        wait_for(lambda: (runs.get_run(run.id).epoch or 0) >= 1 or process.poll() is not None,
              timeout=120)
        assert process.poll() is None, "the training ended before the signal"
        process.send_signal(signal.SIGTERM)
        sent = time.monotonic()
        out, err = process.communicate(timeout=30)
        assert time.monotonic() - sent < 15
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 143, err
    final = runs.get_run(run.id)
    assert final.status == "cancelled" and "SIGTERM" in final.reason
    assert runs.running_run("global") is None


def test_stopping_a_process_that_trains_in_the_background_cancels_its_run(platform: str) -> None:
    """What the console does on SIGTERM: Streamlit stops its server and the interpreter exits;
    the trainings this process runs are cancelled before its worker threads are joined."""
    script = textwrap.dedent(f"""
        import signal, sys, time
        sys.path.insert(0, {str(REPO)!r})
        from beacon.config import ModelConfig
        from beacon.training import start_training_in_background
        from tests.auth_support import ADMIN
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # as Streamlit's handler does
        config = ModelConfig.from_dict({LONG.to_dict()!r})
        print(start_training_in_background(force=True, config=config, actor=ADMIN), flush=True)
        while True:
            time.sleep(0.1)
    """)
    process = subprocess.Popen([sys.executable, "-c", script], cwd=REPO, env=dict(os.environ),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        run_id = int(process.stdout.readline())
        wait_for(lambda: _running_epoch(run_id))
        process.send_signal(signal.SIGTERM)
        sent = time.monotonic()
        process.communicate(timeout=30)
        assert time.monotonic() - sent < 15
    finally:
        if process.poll() is None:
            process.kill()
    final = runs.get_run(run_id)
    assert final.status == "cancelled" and "shutdown of process" in final.reason
    assert runs.running_run("global") is None
