"""Saved training settings: what smart retrains train with, who may change them, the audit,
all-or-nothing saves, two admins at once, and the command line."""
from __future__ import annotations

import json

import pytest

from beacon import training, training_settings, versions
from beacon.actions import PermissionDenied
from beacon.cli import main
from beacon.cli.training_settings import parse_assignments
from beacon.config import ModelConfig
from beacon.errors import BeaconError
from data_access import audit
from tests.auth_support import ADMIN, OPERATOR, actor
from tests.concurrency import at_once
from tests.test_cli_train import world  # noqa: F401 - the fixture

# trains in about a second: saved, these are what every smart retrain below uses
TINY = {"dim": 8, "epochs": 3, "batch_size": 64, "negatives": 4, "validation_fraction": 0.0,
        "patience": 0, "seed": 3, "refit": False}


def test_nothing_saved_means_the_built_in_defaults(db: str) -> None:
    assert training_settings.saved().overrides == {}
    assert training_settings.saved().updated_by is None
    assert training_settings.current_config() == ModelConfig()


def test_only_changes_from_the_defaults_are_kept_and_saves_add_up(db: str) -> None:
    training_settings.save_training_settings({"epochs": 40, "dim": 32}, actor=ADMIN)  # dim: default
    training_settings.save_training_settings({"type_weights": {"click": 0.3}}, actor=ADMIN)
    training_settings.save_training_settings({"type_weights": {"view": 0.0}}, actor=ADMIN)
    saved = training_settings.saved()
    assert saved.overrides == {"epochs": 40, "type_weights": {"click": 0.3, "view": 0.0}}
    assert saved.updated_by == ADMIN.name and saved.updated_at is not None
    config = training_settings.current_config()
    assert config.epochs == 40 and config.weight("click") == 0.3 and config.weight("view") == 0.0
    assert config.weight("register") == 1.0 and config.dim == ModelConfig().dim
    # saving a default value back takes it off the list
    training_settings.save_training_settings({"epochs": ModelConfig().epochs}, actor=ADMIN)
    assert training_settings.saved().overrides == {"type_weights": {"click": 0.3, "view": 0.0}}


def test_a_bad_name_or_value_saves_nothing_and_is_audited(db: str) -> None:
    training_settings.save_training_settings({"epochs": 40}, actor=ADMIN)
    for bad, says in (({"patience": 5, "dim": 0}, "dim: 0"),
                      ({"patience": 5, "bogus": 1}, "unknown model setting(s): bogus")):
        with pytest.raises(BeaconError, match=re_escape(says)):
            training_settings.save_training_settings(bad, actor=ADMIN)
    with pytest.raises(BeaconError, match="unknown training setting"):
        training_settings.reset_training_settings(["epochs", "nope"], actor=ADMIN)
    with pytest.raises(BeaconError, match="no settings given"):
        training_settings.save_training_settings({}, actor=ADMIN)
    assert training_settings.saved().overrides == {"epochs": 40}  # patience=5 went nowhere
    outcomes = [r.outcome for r in audit.entries(action="save_training_settings")]
    assert outcomes.count("failed") == 3 and outcomes.count("ok") == 1


def re_escape(text: str) -> str:
    import re

    return re.escape(text)


def test_only_administrators_change_them_and_every_change_is_on_the_record(db: str) -> None:
    for who in (OPERATOR, actor("viewer@example.org", "viewer")):
        with pytest.raises(PermissionDenied, match="administer"):
            training_settings.save_training_settings({"epochs": 40}, actor=who)
        with pytest.raises(PermissionDenied):
            training_settings.reset_training_settings(actor=who)
    assert training_settings.saved().overrides == {}
    training_settings.save_training_settings({"epochs": 40, "loss": "bpr"}, actor=ADMIN)
    training_settings.reset_training_settings(["loss"], actor=ADMIN)
    [saved] = audit.entries(action="save_training_settings", who=ADMIN.name)
    assert saved.outcome == "ok"
    assert saved.params["changed"] == {"epochs": [None, 40], "loss": [None, "bpr"]}
    [reset] = [r for r in audit.entries(action="reset_training_settings") if r.outcome == "ok"]
    assert reset.params["changed"] == {"loss": ["bpr", None]}
    refused = [r for r in audit.entries(who=OPERATOR.name)]
    assert {r.outcome for r in refused} == {"refused"} and len(refused) == 2


def test_one_change_clears_some_and_saves_others_or_does_neither(db: str) -> None:
    training_settings.save_training_settings({"epochs": 40, "loss": "bpr"}, actor=ADMIN)
    with pytest.raises(BeaconError):
        training_settings.save_training_settings({"dim": -1}, reset=["loss"], actor=ADMIN)
    assert training_settings.saved().overrides == {"epochs": 40, "loss": "bpr"}
    training_settings.save_training_settings({"dim": 16}, reset=["loss"], actor=ADMIN)
    assert training_settings.saved().overrides == {"epochs": 40, "dim": 16}
    training_settings.save_training_settings({"patience": 5}, reset_all=True, actor=ADMIN)
    assert training_settings.saved().overrides == {"patience": 5}
    training_settings.reset_training_settings(actor=ADMIN)
    assert training_settings.saved() == training_settings.SavedSettings()


def test_two_admins_saving_at_once_keep_both_changes(db: str) -> None:
    """Each save edits what is saved at its commit, not what it read before: no lost update."""
    changes = [{"epochs": 40}, {"patience": 5}, {"dim": 16}, {"negatives": 8},
               {"batch_size": 512}, {"loss": "bpr"}]
    errors = at_once(lambda change: training_settings.save_training_settings(
        change, actor=ADMIN), changes)
    assert not errors, errors
    assert training_settings.saved().overrides == {k: v for c in changes for k, v in c.items()}


def test_smart_retrains_train_with_the_saved_settings(world) -> None:  # noqa: F811
    training_settings.save_training_settings(TINY, actor=ADMIN)
    first = training.train(actor=ADMIN)
    assert first.status == "trained", first.reason
    stored = versions.show(first.model_version)
    assert stored.hyperparameters["dim"] == 8 and stored.hyperparameters["epochs"] == 3
    assert versions.fingerprint_state() == "current"
    assert training.train(actor=ADMIN).status == "skipped"  # nothing changed
    # a saved change makes the active model stale, and the next smart retrain trains with it
    training_settings.save_training_settings({"dim": 6}, actor=ADMIN)
    assert versions.fingerprint_state() == "stale"
    second = training.train(actor=ADMIN)
    assert second.status == "trained", second.reason
    assert versions.show(second.model_version).hyperparameters["dim"] == 6
    # a forced retrain with settings of its own: those over the saved ones, the saved unchanged
    run_id = training.start_training_in_background(force=True, config={"epochs": 2},
                                                   actor=ADMIN)
    once = training.background_result(run_id, timeout=300)
    assert once.status == "trained", once.reason
    used = versions.show(once.model_version).hyperparameters
    assert used["dim"] == 6 and used["epochs"] == 2
    assert training_settings.saved().overrides == {**TINY, "dim": 6}
    assert versions.fingerprint_state() == "stale"  # trained with other settings than saved


def test_the_saved_maximum_age_decides_when_a_model_is_too_old(world) -> None:  # noqa: F811
    training_settings.save_training_settings(TINY, actor=ADMIN)
    assert training.train(actor=ADMIN).status == "trained"
    training_settings.save_training_settings({"max_age_hours": 1e-9}, actor=ADMIN)
    # the maximum age is not fingerprinted: only the age makes this model stale
    again = training.train(actor=ADMIN)
    assert again.status == "trained" and "(max age 1e-09 h)" in again.reason, again.reason


def test_settings_an_older_beacon_saved_name_the_way_out(db: str, capsys) -> None:
    from data_access import training_settings as store

    store.change(lambda _: {"retired_setting": 1, "epochs": 40}, by="someone")
    with pytest.raises(BeaconError, match="training-settings reset retired_setting`"):
        training_settings.current_config()
    with pytest.raises(BeaconError, match="retired_setting"):
        training.train(actor=ADMIN)  # nothing trains on settings it cannot read
    # `show` still shows what is saved, and the problem
    assert main(["training-settings", "show", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["settings"] is None
    assert shown["saved"] == {"retired_setting": 1, "epochs": 40}
    assert "do not suit this version of Beacon" in shown["problem"]
    assert main(["training-settings", "show"]) == 0
    assert "problem: the saved training settings" in capsys.readouterr().out
    # a save that leaves the retired setting in place is refused, naming the way out
    with pytest.raises(training_settings.BadSettings, match="reset retired_setting") as refused:
        training_settings.save_training_settings({"dim": 16}, actor=ADMIN)
    assert refused.value.part == "reset"
    # the retired name can be cleared by name, and the rest stays
    training_settings.reset_training_settings(["retired_setting"], actor=ADMIN)
    assert training_settings.current_config() == ModelConfig(epochs=40)
    assert training_settings.document()["problem"] is None


def test_assignments_on_the_command_line() -> None:
    assert parse_assignments(["epochs=40", "loss=bpr", 'device="cpu"', "refit=false",
                              "type_weights.click=0.3", "l2=1e-4"]) == {
        "epochs": 40, "loss": "bpr", "device": "cpu", "refit": False,
        "type_weights": {"click": 0.3}, "l2": 1e-4}
    for bad in ("epochs", "=3"):
        with pytest.raises(BeaconError, match="NAME=VALUE"):
            parse_assignments([bad])


def test_the_training_settings_commands(db: str, capsys) -> None:
    def cli(*argv: str):
        code = main(list(argv))
        out, err = capsys.readouterr()
        return code, (json.loads(out) if "--json" in argv and out.strip() else out), err

    code, shown, _ = cli("training-settings", "show", "--json")
    assert code == 0 and shown["saved"] == {} and shown["updated_by"] is None
    assert shown["settings"] == ModelConfig().to_dict()
    code, saved, _ = cli("training-settings", "set", "epochs=40", "type_weights.click=0.3",
                         "--json")
    assert code == 0 and saved["saved"] == {"epochs": 40, "type_weights": {"click": 0.3}}
    assert saved["settings"]["epochs"] == 40 and saved["updated_by"].startswith("cli:")
    code, text, _ = cli("training-settings", "show")
    assert "epochs" in text and "40  (saved)" in text and "smart retrains train with these" in text
    code, _, err = cli("training-settings", "set", "epochs=0")
    assert code == 2 and err.splitlines()[0].startswith("beacon: error: bad value for model "
                                                       "setting epochs: 0")
    code, reset, _ = cli("training-settings", "reset", "epochs", "--json")
    assert code == 0 and reset["saved"] == {"type_weights": {"click": 0.3}}
    code, text, _ = cli("training-settings", "reset")
    assert code == 0 and "nothing saved" in text
    assert [r.action for r in audit.entries() if r.who.startswith("cli:")][:3] == [
        "reset_training_settings", "reset_training_settings", "save_training_settings"]


def test_the_api_reads_and_changes_them_with_the_admin_scope(db: str, monkeypatch) -> None:
    from tests.api_support import api_client

    api = api_client(monkeypatch)
    with api.client:
        shown = api.get("/v1/training/settings", who="admin").json()
        assert shown["saved"] == {} and shown["settings"] == ModelConfig().to_dict()
        changed = api.client.patch("/v1/training/settings", headers=api.headers("admin"),
                                   json={"set": {"epochs": 40, "loss": "bpr"}})
        assert changed.status_code == 200, changed.text
        assert changed.json()["saved"] == {"epochs": 40, "loss": "bpr"}
        assert changed.json()["updated_by"] == "api:test-admin"
        # clear one and save another in one request; a bad value changes nothing
        bad = api.client.patch("/v1/training/settings", headers=api.headers("admin"),
                               json={"reset": ["loss"], "set": {"dim": 0}})
        assert bad.status_code == 422 and "dim: 0" in bad.json()["error"]["message"], bad.text
        assert bad.json()["error"]["field"] == "set"
        unknown = api.client.patch("/v1/training/settings", headers=api.headers("admin"),
                                   json={"reset": ["nope"]})
        assert unknown.status_code == 422 and unknown.json()["error"]["field"] == "reset"
        both = api.client.patch("/v1/training/settings", headers=api.headers("admin"),
                                json={"reset": ["loss"], "set": {"dim": 16}})
        assert both.json()["saved"] == {"epochs": 40, "dim": 16}
        empty = api.client.patch("/v1/training/settings", headers=api.headers("admin"), json={})
        assert empty.status_code == 422 and empty.json()["error"]["field"] == "set", empty.text
        for who in ("recommend", "ingest"):
            refused = api.client.patch("/v1/training/settings", headers=api.headers(who),
                                       json={"reset_all": True})
            assert refused.status_code == 403, refused.text
            assert api.get("/v1/training/settings", who=who).status_code == 403
        cleared = api.client.patch("/v1/training/settings", headers=api.headers("admin"),
                                   json={"reset_all": True})
        assert cleared.json()["saved"] == {} and cleared.json()["updated_by"] is None
    assert [r.outcome for r in audit.entries(action="save_training_settings")] == [
        "ok", "ok", "failed", "failed", "ok"]  # newest first


def test_two_versions_settings_side_by_side() -> None:
    from beacon.console import settings_difference

    a = ModelConfig().to_dict()
    b = ModelConfig.from_dict({"epochs": 40, "type_weights": {"click": 0.3}}).to_dict()
    older = {k: v for k, v in a.items() if k != "trend_blend"}  # a version before a setting
    assert settings_difference(a, b, "v1", "v2") == [
        {"setting": "epochs", "v1": "30", "v2": "40"},
        {"setting": "type_weights.click", "v1": "0.2", "v2": "0.3"}]
    assert settings_difference(older, a, "v1", "v2") == [
        {"setting": "trend_blend", "v1": "-", "v2": "True"}]
    assert settings_difference(a, dict(a), "v1", "v2") == []
