"""Property-based fuzzing of every route from the app's own OpenAPI schema (Schemathesis + Hypothesis):
no 5xx, and every response (status, content type, body) as the schema documents it."""

from __future__ import annotations

from collections import Counter

import pytest
import schemathesis
from schemathesis.specs.openapi.checks import positive_data_acceptance
from hypothesis import HealthCheck, settings

from lookalike.catalogue import import_catalogue
from lookalike.demo import BUNDLED_SAMPLE
from lookalike.extractors import create_extractor
from lookalike.features import extract_features
from lookalike.web import Settings, create_app
from lookalike.workspace import Workspace


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory):
    ws = Workspace(tmp_path_factory.mktemp("fuzz") / "ws")
    import_catalogue(ws.catalogue, "fashion-mnist", BUNDLED_SAMPLE, limit=60, seed=0, image_dir=ws.images_dir)
    extract_features(ws.catalogue, create_extractor("pixels"), ws.feature_store("pixels"), progress=False)
    app = create_app(ws, Settings(db_url=f"sqlite:///{ws.root / 'votes.sqlite'}", secret="fuzz",
                                  vote_burst=10**6, pair_burst=10**6, address_vote_burst=10**6))
    return schemathesis.openapi.from_asgi("/openapi.json", app)


def test_every_route_survives_fuzzing(api_schema):
    """Each operation of the schema, fuzzed with Hypothesis; a failure names the operation and the request."""
    from hypothesis import given

    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 15  # every API route is in the schema
    statuses: dict[str, Counter] = {}
    for operation in operations:
        @given(case=operation.as_strategy())
        @settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def fuzz(case):
            # positive_data_acceptance is left out: the schema cannot say "an image" or "an item that exists",
            # so schema-valid requests may be rejected (422 / 404); every other check applies
            response = case.call_and_validate(excluded_checks=[positive_data_acceptance])
            statuses.setdefault(operation.label, Counter())[response.status_code] += 1

        try:
            fuzz()
        except Exception as exc:
            raise AssertionError(f"{operation.label}: {exc}") from exc
    print({label: dict(counts) for label, counts in statuses.items()})
    assert set(statuses) == {o.label for o in operations}  # every operation was really called
    assert sum(sum(c.values()) for c in statuses.values()) >= 150  # operations with inputs get many cases
