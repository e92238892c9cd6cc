"""The training fingerprint: what the global model was trained on (data and settings). Both the
trainer (should it retrain?) and the versions (is the active one stale?) read it, so it lives
apart from both."""
from __future__ import annotations

from typing import Any

from data_access import runs


def config_or_default(config: Any = None) -> Any:
    """`config`, or the saved training settings (the built-in defaults under them) when None."""
    from beacon.training_settings import current_config

    return config if config is not None else current_config()


#: settings that do not change what the model learns: changing them is no reason to retrain
NOT_FINGERPRINTED = ("max_age_hours", "device")


def training_fingerprint(config: Any = None) -> runs.Fingerprint:
    """The data fingerprint for `config`: only interaction types with a non-zero weight count
    (impressions, weight 0 by default, can be logged without making the model stale), and
    every setting but NOT_FINGERPRINTED."""
    config = config_or_default(config)
    types = sorted(t for t, w in config.type_weights.items() if w)
    settings = {k: v for k, v in config.to_dict().items() if k not in NOT_FINGERPRINTED}
    return runs.data_fingerprint(settings, types)
