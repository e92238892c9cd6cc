"""A small trained world shared by the console tests: the demo platform at a tiny size and a
model configuration that trains in a second or two."""
from __future__ import annotations

from typing import Iterator

import pytest

from tests.auth_support import ADMIN, actor

DEMO = dict(users=60, events=40, days=14, seed=3)


def tiny_config():
    from beacon.config import ModelConfig

    return ModelConfig(dim=8, epochs=3, batch_size=256, negatives=4, patience=1, refit=False,
                       device="cpu")


def two_trained_versions(tmp_path_factory: pytest.TempPathFactory, name: str) -> Iterator[dict]:
    """Demo data and two tiny global versions (the second active), for a module-scoped
    fixture: yields {"url", "versions"} with DATABASE_URL pointing at it meanwhile."""
    from beacon.demo import load_demo_data
    from beacon.training import train
    from data_access import migrate
    from tests.conftest import _empty_database

    with pytest.MonkeyPatch.context() as patch:
        for url in _empty_database(tmp_path_factory.mktemp(name)):
            patch.setenv("DATABASE_URL", url)
            migrate.upgrade(url)
            load_demo_data(**DEMO, actor=ADMIN)
            first = train(force=True, config=tiny_config(), actor=actor("fixture"))
            second = train(force=True, config=tiny_config().with_overrides(seed=7),
                           actor=actor("fixture"))
            assert first.status == second.status == "trained", (first, second)
            yield {"url": url, "versions": (first.model_version, second.model_version)}
