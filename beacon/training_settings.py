"""The training settings every training without settings of its own uses: smart retrains (the
console's button, cron, the API) and the fingerprint that decides whether they train.

Saved as the changes from the built-in defaults (ModelConfig()), so that a setting nobody
chose follows the defaults of the Beacon version that runs. Saving or resetting needs the
administer permission: it changes what every later retrain trains, like an activation.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from beacon.actions import Actor, audit_row, state_changing
from beacon.config import DEFAULT_TYPE_WEIGHTS, ModelConfig
from beacon.errors import BeaconError
from beacon.invocation import beacon_command
from data_access import training_settings as store
from data_access.training_settings import SavedSettings

__all__ = ["BadSettings", "SavedSettings", "UnreadableSettings", "current_config", "document",
           "overrides_of", "reset_training_settings", "save_training_settings", "saved"]


class BadSettings(BeaconError):
    """Settings refused: `part` says which part of the request was at fault ("set": a name or
    value to save; "reset": a name to clear)."""

    def __init__(self, message: str, part: str) -> None:
        super().__init__(message)
        self.part = part


class UnreadableSettings(BeaconError):
    """Saved settings this version of Beacon cannot read (a setting an upgrade retired)."""


def saved() -> SavedSettings:
    """What is saved (empty overrides: the built-in defaults apply)."""
    return store.get()


def current_config() -> ModelConfig:
    """The built-in defaults with the saved settings over them."""
    return _config_of(saved().overrides)


def _config_of(overrides: dict[str, Any]) -> ModelConfig:
    try:
        return ModelConfig.from_dict(overrides)
    except BeaconError as error:
        retired = sorted(set(overrides) - set(ModelConfig().to_dict()))
        fix = (f"clear {'it' if len(retired) == 1 else 'them'} with `{_reset_command(retired)}`"
               if retired else
               f"change it with `{beacon_command('training-settings set NAME=VALUE')}` or go "
               f"back to the defaults with `{_reset_command()}`")
        raise UnreadableSettings(f"the saved training settings do not suit this version of "
                                 f"Beacon ({error}); {fix}") from error


def document() -> dict[str, Any]:
    """What `training-settings show --json` and GET /v1/training/settings answer: `settings`
    (every setting's value now; null when the saved ones cannot be read), `saved` (only the
    saved ones, as stored), `updated_by`, `updated_at` (null when nothing is saved), and
    `problem` (why the saved settings cannot be read, and the fix; null when they can)."""
    stored = saved()  # read once: the document describes one state
    try:
        settings, problem = _config_of(stored.overrides).to_dict(), None
    except UnreadableSettings as error:
        settings, problem = None, str(error)
    return {"settings": settings, "saved": stored.overrides, "updated_by": stored.updated_by,
            "updated_at": stored.updated_at, "problem": problem}


def overrides_of(config: ModelConfig) -> dict[str, Any]:
    """The settings of `config` that differ from the built-in defaults (interaction weights:
    only the types whose weight differs)."""
    defaults = ModelConfig().to_dict()
    out: dict[str, Any] = {}
    for name, value in config.to_dict().items():
        if name == "type_weights":
            changed = {t: w for t, w in value.items() if DEFAULT_TYPE_WEIGHTS.get(t) != w}
            if changed:
                out[name] = changed
        elif value != defaults[name]:
            out[name] = value
    return out


def _changes(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, list]:
    """{setting: [saved before, saved now]} for every setting that changed (None: default)."""
    return {name: [before.get(name), after.get(name)]
            for name in sorted(set(before) | set(after)) if before.get(name) != after.get(name)}


def _audited(before: dict, after: dict):
    return audit_row(changed=_changes(before, after))


def _edit(settings: Mapping[str, Any], clear: Sequence[str] | None, clear_all: bool):
    """The edit of the saved overrides: clear (every one, or the names), then save `settings`
    over the rest. Validated as a whole: a bad name or value raises, and nothing is written."""
    known = set(ModelConfig().to_dict())
    names = set(clear or ())

    def edit(current: dict) -> dict:
        unknown = sorted(names - known - set(current))  # a retired setting saved may go
        if unknown:
            raise BadSettings(f"unknown training setting(s): {', '.join(unknown)} "
                              f"(known: {', '.join(sorted(known))})", "reset")
        kept = {} if clear_all else {k: v for k, v in current.items() if k not in names}
        retired = sorted(set(kept) - known)
        if retired:
            raise BadSettings(f"the saved setting(s) {', '.join(retired)} are unknown to this "
                              f"version of Beacon: clear them in the same change "
                              f"(`{_reset_command(retired)}`)", "reset")
        merged = {**ModelConfig().to_dict(), **kept, **settings}
        weights = settings.get("type_weights")
        if isinstance(weights, Mapping):  # a few types' weights: the others stay as saved
            saved_weights = kept.get("type_weights")
            merged["type_weights"] = {**DEFAULT_TYPE_WEIGHTS, **(
                saved_weights if isinstance(saved_weights, Mapping) else {}), **weights}
        try:
            return overrides_of(ModelConfig.from_dict(merged))
        except BeaconError as error:
            raise BadSettings(str(error), "set") from error

    return edit


def _reset_command(names: Sequence[str] = ()) -> str:
    return beacon_command(" ".join(["training-settings reset", *names]))


@state_changing("save_training_settings", needs="administer")
def save_training_settings(settings: Mapping[str, Any] | None = None,
                           reset: Sequence[str] | None = None, reset_all: bool = False, *,
                           actor: Actor) -> SavedSettings:
    """Save `settings` (any subset, by name) over what is saved, after clearing the `reset`
    names (or, `reset_all`, every saved setting) back to their built-in defaults; one
    transaction. Refused as a whole, nothing written, for an unknown name or a bad value."""
    settings = dict(settings or {})
    if not (settings or reset or reset_all):
        raise BadSettings("no settings given to save (name them, e.g. epochs=40)", "set")
    return store.change(_edit(settings, reset, reset_all), by=actor.name, audit=_audited)


@state_changing("reset_training_settings", needs="administer")
def reset_training_settings(names: Sequence[str] | None = None, *,
                            actor: Actor) -> SavedSettings:
    """Back to the built-in defaults: every setting, or only `names`."""
    return store.change(_edit({}, names, not names), by=actor.name, audit=_audited)
