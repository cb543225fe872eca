"""The OpenAPI document describes v1 and generates without warnings."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command

pytestmark = pytest.mark.django_db


def test_schema_endpoint_lists_the_v1_routes(client):
    resp = client.get("/api/schema/", {"format": "json"})
    assert resp.status_code == 200
    doc = resp.json()
    assert doc["openapi"].startswith("3.")
    paths = doc["paths"]
    for path in [
        "/api/v1/journeys/",
        "/api/v1/journeys/{id}/",
        "/api/v1/journeys/{id}/replay/",
        "/api/v1/exceptions/",
        "/api/v1/journal-entries/{id}/",
        "/api/v1/posting-rules/{id}/",
        "/api/v1/fx-rates/",
    ]:
        assert path in paths, path
    replay = paths["/api/v1/journeys/{id}/replay/"]["post"]
    assert set(replay["responses"]) == {"202", "403", "404", "409"}
    assert {"tokenAuth": []} in replay["security"]
    rate = doc["components"]["schemas"]["FxRate"]["properties"]["rate"]
    assert (rate["type"], rate["format"]) == ("string", "decimal")
    line = doc["components"]["schemas"]["JournalLine"]["properties"]
    assert line["debit_minor"]["type"] == "integer"


def test_schema_generates_and_validates_without_warnings():
    out = io.StringIO()
    call_command("spectacular", "--validate", "--fail-on-warn", stdout=out)
    assert "/api/v1/journeys/" in out.getvalue()
