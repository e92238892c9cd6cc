"""What the API tests share: a TestClient on the app with keys of each scope."""
from __future__ import annotations

from dataclasses import dataclass

import pytest
from fastapi.testclient import TestClient


@dataclass
class Api:
    client: TestClient
    keys: dict[str, str]  # scope name (or "all") -> secret

    def headers(self, who: str) -> dict[str, str]:
        return {"X-API-Key": self.keys[who]}

    def get(self, path: str, who: str = "all", **kw):
        return self.client.get(path, headers=self.headers(who), **kw)

    def post(self, path: str, body=None, who: str = "all", **kw):
        return self.client.post(path, json=body, headers=self.headers(who), **kw)

    def put(self, path: str, body=None, who: str = "all", **kw):
        return self.client.put(path, json=body, headers=self.headers(who), **kw)

    def delete(self, path: str, who: str = "all", **kw):
        return self.client.delete(path, headers=self.headers(who), **kw)


def make_keys() -> dict[str, str]:
    from beacon.api_keys import create_key
    from tests.auth_support import ADMIN

    keys = {scope: create_key(f"test-{scope}", scope, actor=ADMIN).secret
            for scope in ("recommend", "ingest", "admin")}
    keys["all"] = create_key("test-all", "recommend,ingest,admin", actor=ADMIN).secret
    return keys


def api_client(monkeypatch) -> Api:
    from beacon.api.app import IN_PROCESS_WORKER, create_app

    monkeypatch.setenv(IN_PROCESS_WORKER, "0")
    keys = make_keys()
    return Api(TestClient(create_app()), keys)


@pytest.fixture
def api(db, monkeypatch) -> Api:
    """The demo world of tests/test_recommend.py with a trained global model, and a client."""
    from tests.test_recommend import _train_global, world

    world()
    _train_global()
    client = api_client(monkeypatch)
    with client.client:
        yield client
