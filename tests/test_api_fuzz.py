"""A property-based pass over the whole OpenAPI document (schemathesis), bounded by a number of
examples per operation (never by time): no 500 anywhere, and every answer as documented."""
from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import content_type_conformance, \
    response_schema_conformance, status_code_conformance

from tests.api_support import make_keys
from tests.conftest import _empty_database
from tests.test_recommend import _train_global, world

EXAMPLES = 20
# Not the checks that take a documented-valid request answered 422 as a failure: the API also
# refuses what a schema cannot say (lat without lon, an event id the database does not hold).
# Nor unsupported_method: Starlette's 405 names only the methods of the first route matched.
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]


@pytest.fixture(scope="module")
def all_scopes_key(tmp_path_factory):
    """One database for every operation (seeded, trained) and a key with every scope."""
    from beacon.api.app import IN_PROCESS_WORKER
    from data_access import migrate

    with pytest.MonkeyPatch.context() as patch:
        for url in _empty_database(tmp_path_factory.mktemp("fuzz")):
            patch.setenv("DATABASE_URL", url)
            patch.setenv(IN_PROCESS_WORKER, "0")
            migrate.upgrade(url)
            world()
            _train_global()
            yield make_keys()["all"]


def _app():
    from beacon.api.app import create_app

    return create_app()  # reads DATABASE_URL per request, not when built


schema = schemathesis.openapi.from_asgi("/openapi.json", _app())


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
def test_no_server_error_anywhere(case, all_scopes_key: str) -> None:
    case.call_and_validate(headers={"X-API-Key": all_scopes_key}, checks=CHECKS)
