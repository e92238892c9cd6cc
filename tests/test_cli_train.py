"""`python -m beacon train | models | evaluate` through the real entry point (in-process, on the
test database): JSON on stdout only, exit codes, one clear stderr line for bad input."""
from __future__ import annotations

import dataclasses
import json
from datetime import datetime, timedelta, timezone

import pytest
import torch

from beacon import training, versions
from beacon.config import ModelConfig
from beacon.convergence import fit_convergence
from beacon.demo import load_demo_data
from beacon.cli import main
from data_access import models_store as store
from data_access import runs
from data_access.db import session_scope
from data_access.schema import Event, EventTag, Interaction, User, UserInterest
from tests.auth_support import ADMIN

NOW = datetime.now(timezone.utc).replace(second=0, microsecond=0)
# The command line trains with the default settings; the other tests train a tiny model
# through the same service so that only the `train` command itself pays for the defaults.
TINY = ModelConfig(dim=8, epochs=3, batch_size=64, negatives=4, validation_fraction=0.0,
                   patience=0, seed=3, refit=False)
torch.set_num_threads(1)


@pytest.fixture
def world(db):
    """Three jazz fans and three football fans with a few registrations each."""
    versions.clear_cache()
    with session_scope() as session:
        for side, city in (("jazz", "Berlin"), ("football", "Paris")):
            events = []
            for j in range(4):
                start = NOW + timedelta(days=2 + j)
                event = Event(event_id=f"{side}-{j}", title=f"{side} {j}", category=side,
                              organizer=f"{side} org", city=city, latitude=50.0, longitude=5.0,
                              start_time=start, timezone="UTC", price=10.0)
                session.add(event)
                session.flush()
                session.add(EventTag(event_id=event.id, tag=side))
                events.append(event.id)
            for i in range(3):
                user = User(email=f"{side}{i}@example.org", city=city, latitude=50.0,
                            longitude=5.0)
                session.add(user)
                session.flush()
                session.add(UserInterest(user_id=user.id, tag=side))
                for j, event_id in enumerate(events[:3]):
                    session.add(Interaction(user_id=user.id, event_id=event_id, type="register",
                                            occurred_at=NOW - timedelta(days=3, hours=i + j)))
    yield
    versions.clear_cache()


def cli(capsys, *argv: str) -> tuple[int, object, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    payload = json.loads(out) if "--json" in argv and out.strip() else out
    return code, payload, err


def test_train_twice_trains_then_skips_with_a_reason(world, capsys):
    code, first, err = cli(capsys, "train", "--json")
    assert code == 0, err
    assert first["status"] == "trained" and first["model_version"] and first["run_id"]
    assert "epoch 1/" in err  # progress goes to stderr as plain lines off a terminal
    code, second, _ = cli(capsys, "train", "--json")
    assert code == 0
    assert second["status"] == "skipped"
    assert second["reason"].startswith("data unchanged and the active model")
    assert second["model_version"] == first["model_version"]
    code, forced, _ = cli(capsys, "train", "--force", "--json")
    assert code == 0 and forced["status"] == "trained" and forced["reason"] == "forced"
    assert runs.get_run(forced["run_id"]).trigger == "force"


def test_train_json_reports_the_stored_models_fit_not_the_holdout_models(world, capsys):
    """`training` is the stored model's fit: its loss curve is the version's loss history, its
    epochs the refit's (the weights kept), its best epoch the one early stopping chose; the
    holdout evaluation's own model is reported apart, as metrics.holdout_model."""
    code, payload, err = cli(capsys, "train", "--force", "--seed", "5", "--json")
    assert code == 0, err
    fit = payload["training"]
    stored = store.get_version(payload["model_version"])
    assert [e["loss"] for e in fit["loss_curve"]] == pytest.approx(
        [e["loss"] for e in stored.loss_history])
    refit = [e for e in fit["loss_curve"] if e["phase"] == "refit"]
    assert fit["epochs"] == (len(refit) if refit else len(fit["loss_curve"]))
    if refit:
        assert fit["best_epoch"] == len(refit)
    assert "train" not in payload["metrics"] and "holdout_model" in payload["metrics"]
    assert stored.hyperparameters["seed"] == 5
    # the co-attendance component as stored: weight 0 and no lambda when validation left it off
    co = fit["coattendance"]
    assert set(co) == {"weight", "lambda", "recency", "events", "validation_hybrid_ndcg",
                       "validation_blend_ndcg"}
    assert (co["weight"] > 0) == (co["lambda"] is not None) == (co["events"] > 0) \
        == (co["recency"] is not None)
    # the content component as stored, with its cold validation split's figures
    content = fit["content"]
    assert set(content) == {"weight", "neighbours", "popularity_weight", "events", "terms",
                            "validation_cold_events", "validation_hybrid_ndcg",
                            "validation_blend_ndcg"}
    assert content["weight"] > 0 or content["popularity_weight"] == 0
    assert (content["weight"] > 0) == (content["events"] > 0) == (content["terms"] > 0)
    assert (content["weight"] > 0) == (content["neighbours"] in (50, 0))
    assert (content["weight"] > 0) == (content["validation_blend_ndcg"] is not None)
    # the trend component as stored, with its time split's figures
    trend = fit["trend"]
    assert set(trend) == {"weight_known", "weight_new", "half_life_days", "events",
                          "validation_split_time", "validation_users", "validation_ndcg"}
    on = trend["weight_known"] > 0 or trend["weight_new"] > 0
    assert on == (trend["half_life_days"] is not None) == (trend["events"] > 0)
    # the version keeps the same report, for the console to show without loading the weights
    assert stored.components == {"coattendance": co, "content": content, "trend": trend}
    # whether early stopping or the epoch cap ended the fit, judged on the stored curve
    judged = fit_convergence(stored.loss_history, stored.hyperparameters)
    assert fit["convergence"] == (judged.to_dict() if judged is not None else None)


def test_a_fit_the_epoch_cap_ended_says_so_in_train_and_models_show(db, capsys):
    """Two epochs, patience 3: early stopping cannot have ended it, so the version is flagged
    as likely under-trained wherever its fit is shown; a fit early stopping ended is not."""
    load_demo_data(users=150, events=60, days=30, seed=3, actor=ADMIN)  # enough to validate
    capped = ModelConfig(dim=8, epochs=2, patience=3, batch_size=256, negatives=4, seed=3)
    result = training.train(config=capped, actor=ADMIN)
    convergence = result.training["convergence"]
    assert convergence["validation_epochs"] == 2 and convergence["still_improving"]
    code, human, _ = cli(capsys, "models", "show", str(result.model_version))
    assert code == 0 and "early stopping: best epoch" in human
    assert "warning: training reached its cap of 2 epochs before early stopping ended it" \
        in human
    # the cap also started a second run at four times the rate; the version says what each
    # reached and which one it kept
    assert "learning rate 0.005, reached the cap of 2 epochs still improving" \
        in convergence["retry_note"] and "a second run at 0.02 reached" in convergence["retry_note"]
    assert f"  learning rate: {convergence['retry_note']}" in human
    retry = result.training["learning_rate_retry"]
    assert (retry["first"]["learning_rate"], retry["retry"]["learning_rate"]) == (0.005, 0.02)
    assert retry["first"]["capped"] and retry["kept"] in ("first", "retry")
    code, shown, _ = cli(capsys, "models", "show", str(result.model_version), "--json")
    assert shown["convergence"] == convergence

    stopped = training.train(config=dataclasses.replace(capped, epochs=30, patience=1),
                             force=True, actor=ADMIN)
    ran = stopped.training["convergence"]["validation_epochs"]
    assert ran < 30 and not stopped.training["convergence"]["still_improving"]
    code, human, _ = cli(capsys, "models", "show", str(stopped.model_version))
    assert "early stopping: best epoch" in human and "warning:" not in human
    assert "learning rate:" not in human and stopped.training["convergence"]["retry_note"] == ""
    assert stopped.training["learning_rate_retry"] is None


def test_train_seed_is_for_the_global_model_only(world, capsys):
    code, _, err = cli(capsys, "train", "--user", "jazz0@example.org", "--seed", "5")
    assert code == 2 and "--seed" in err


def test_train_reports_busy_when_another_process_holds_the_lock(world, capsys):
    holder = runs.acquire("global", trigger="schedule", requested_by="cron").run
    code, payload, _ = cli(capsys, "train", "--json")
    assert code == 0
    assert payload["status"] == "busy" and f"training run {holder.id}" in payload["reason"]
    assert store.list_versions() == []


def test_a_second_process_is_told_busy_while_a_training_runs(world, db, capsys):
    """Two real processes: this one trains (held inside an epoch by an Event), a second
    `python -m beacon train --json` started meanwhile answers busy and exits 0."""
    import os
    import subprocess
    import sys
    import threading
    from pathlib import Path

    inside, proceed = threading.Event(), threading.Event()
    results = []

    def hold(report) -> None:
        inside.set()
        assert proceed.wait(120)

    worker = threading.Thread(target=lambda: results.append(
        training.train(config=TINY, progress_callback=hold, actor=ADMIN)))
    worker.start()
    try:
        assert inside.wait(120)
        holder = runs.running_run("global")
        second = subprocess.run(
            [sys.executable, "-m", "beacon", "train", "--json"], capture_output=True, text=True,
            timeout=120, cwd=Path(__file__).resolve().parent.parent,
            env={**os.environ, "DATABASE_URL": db})
    finally:
        proceed.set()
        worker.join(120)
    assert second.returncode == 0, second.stderr
    payload = json.loads(second.stdout)
    assert payload["status"] == "busy" and f"training run {holder.id}" in payload["reason"]
    assert [r.status for r in results] == ["trained"]


def test_unknown_user_exits_2_with_one_line(world, capsys):
    code, out, err = cli(capsys, "train", "--user", "nobody@example.org", "--json")
    assert code == 2 and out == ""
    assert err.strip().count("\n") == 0 and "nobody@example.org" in err


def test_user_fold_in_from_the_command_line(world, capsys):
    code, _, err = cli(capsys, "train", "--user", "jazz0@example.org", "--json")
    assert code == 2 and "no active global model" in err
    training.train(config=TINY, actor=ADMIN)
    code, payload, err = cli(capsys, "train", "--user", "jazz0@example.org", "--json")
    assert code == 0, err
    assert payload["status"] == "trained" and payload["scope"] == "user"
    assert payload["user"] == "jazz0@example.org"


def test_models_list_show_activate_cleanup(world, capsys):
    v1 = training.train(config=TINY, actor=ADMIN).model_version
    v2 = training.train(config=TINY, force=True, actor=ADMIN).model_version

    code, listed, _ = cli(capsys, "models", "list", "--json")
    assert code == 0 and [v["id"] for v in listed] == [v2, v1]
    for key in ("id", "scope", "status", "created_at", "user", "fingerprint", "metrics"):
        assert key in listed[0]
    assert [v["status"] for v in listed] == ["active", "inactive"]
    datetime.fromisoformat(listed[0]["created_at"])

    code, shown, _ = cli(capsys, "models", "show", str(v1), "--json")
    assert code == 0 and shown["id"] == v1 and shown["hyperparameters"]["dim"] == 8
    assert shown["loss_history"]
    assert set(shown["components"]) == {"coattendance", "content", "trend"}

    code, activated, _ = cli(capsys, "models", "activate", str(v1), "--json")
    assert code == 0 and activated["status"] == "active"
    assert store.active_global_id() == v1

    code, _, err = cli(capsys, "models", "activate", "424242")
    assert code == 2 and "424242" in err

    code, dry, _ = cli(capsys, "models", "cleanup", "--keep-days", "0", "--keep-newest", "0",
                       "--dry-run", "--json")
    assert code == 0 and dry["dry_run"] and [v["id"] for v in dry["deleted"]] == [v2]
    assert set(dry["deleted"][0]) == set(listed[0])  # the list shape, as documented
    code, done, _ = cli(capsys, "models", "cleanup", "--keep-days", "0", "--keep-newest", "0",
                        "--json")
    assert code == 0 and done["count"] == 1
    assert [v.id for v in store.list_versions()] == [v1]  # the active one survives

    code, human, _ = cli(capsys, "models", "list")
    assert code == 0 and "active" in human and str(v1) in human
    code, human, _ = cli(capsys, "models", "show", str(v1))
    assert code == 0 and f"model version {v1}" in human and "loss per epoch" in human
    assert "components (chosen on validation):" in human
    assert "    Co-attendance (who registered for the same events): " in human


def test_evaluate_without_a_model_is_bad_input(db, capsys):
    code, out, err = cli(capsys, "evaluate", "--json")
    assert code == 2 and out == "" and "no active model" in err


def test_evaluate_prints_the_stored_evaluation_or_recomputes_for_another_k(world, capsys):
    trained = training.train(config=TINY, actor=ADMIN)
    stored = store.get_version(trained.model_version).metrics
    assert "beacon" in stored, stored  # evaluated at training time
    code, payload, err = cli(capsys, "evaluate", "--json")
    assert code == 0, err
    assert payload["source"] == "stored" and payload["model_version"] == trained.model_version
    assert payload["k"] == TINY.eval_k and payload["cutoff"]
    for strategy in ("beacon", "popularity"):
        for key in ("hit_rate", "precision", "recall", "ndcg", "coverage"):
            assert 0.0 <= payload[strategy][key] <= 1.0
    assert payload["beacon"] == stored["beacon"]
    code, fresh, err = cli(capsys, "evaluate", "--k", "3", "--json")
    assert code == 0, err
    assert fresh["source"] == "fresh" and fresh["k"] == 3
    assert "beacon" in fresh and "popularity" in fresh
