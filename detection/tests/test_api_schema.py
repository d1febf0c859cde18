"""The OpenAPI schema and its documentation pages, and Schemathesis fuzzing the live API against that schema."""

from pathlib import Path

import pytest
import schemathesis
from django.contrib.staticfiles import finders
from django.core.cache import cache
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from accounts.services import api_token_create
from deepfake_site.wsgi import application
from detection import dispatch, services
from detection.models import Analysis
from detection.tests.conftest import InlineExecutor

SCHEMA_URL = "/api/schema/?format=json"


@pytest.mark.django_db
def test_the_schema_documents_every_endpoint_with_examples(client):
    response = client.get(SCHEMA_URL)

    assert response.status_code == 200
    schema = response.json()
    assert schema["openapi"].startswith("3.")
    operations = {
        (method.upper(), path): operation
        for path, item in schema["paths"].items()
        for method, operation in item.items()
        if method in {"get", "post", "delete"}
    }
    assert set(operations) == {
        ("GET", "/api/v1/analyses/"),
        ("POST", "/api/v1/analyses/"),
        ("GET", "/api/v1/analyses/{public_id}/"),
        ("DELETE", "/api/v1/analyses/{public_id}/"),
        ("GET", "/api/v1/analyses/{public_id}/images/{kind}/"),
        ("GET", "/api/v1/analyses/{public_id}/faces/{number}/image/"),
        ("GET", "/api/v1/analyses/{public_id}/images/frames/{number}/"),
        ("GET", "/api/v1/models/"),
        ("GET", "/api/v1/models/active/"),
        ("GET", "/api/v1/analyses/{public_id}/flag/"),
        ("POST", "/api/v1/analyses/{public_id}/flag/"),
        ("GET", "/api/v1/batches/"),
        ("POST", "/api/v1/batches/"),
        ("GET", "/api/v1/batches/{public_id}/"),
        ("DELETE", "/api/v1/batches/{public_id}/"),
        ("GET", "/api/v1/batches/{public_id}/export.csv"),
    }
    for (method, path), operation in operations.items():
        assert operation.get("summary"), (method, path)
        assert {"bearerAuth": []} in operation["security"]
        for status, response_spec in operation["responses"].items():
            for media_type, content in response_spec.get("content", {}).items():
                if media_type == "application/json":
                    assert content.get("examples"), f"{method} {path} {status} has no example"
    assert schema["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "description": schema["components"]["securitySchemes"]["bearerAuth"]["description"],
    }
    submit = operations[("POST", "/api/v1/analyses/")]["responses"]
    assert {"201", "202", "400", "401", "413", "415", "429", "503"} <= set(submit)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("url", "script"),
    [
        ("/api/docs/", "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js"),
        ("/api/redoc/", "/api/redoc/redoc.standalone.js"),
    ],
)
def test_the_documentation_pages_use_local_files_only(client, url, script):
    response = client.get(url)

    assert response.status_code == 200
    page = response.content.decode()
    assert f'<script src="{script}"></script>' in page
    assert "cdn." not in page and "unpkg" not in page and "jsdelivr" not in page and "googleapis" not in page


@pytest.mark.django_db
def test_the_redoc_bundle_is_the_sidecars_without_its_one_address_elsewhere(client):
    original = Path(finders.find("drf_spectacular_sidecar/redoc/bundles/redoc.standalone.js")).read_bytes()

    response = client.get("/api/redoc/redoc.standalone.js")
    served = response.content

    assert response["Content-Type"].startswith("text/javascript")
    assert b"https://cdn.redoc.ly/redoc/logo-mini.svg" in original
    assert b"cdn.redoc.ly" not in served
    assert len(served) == len(original) - len(b"https://cdn.redoc.ly/redoc/logo-mini.svg") + len(
        b"/static/img/favicon.svg"
    )


# --- Fuzzing ------------------------------------------------------------------------------------------------------


@pytest.fixture
def api_schema(transactional_db, settings, monkeypatch):
    """The live schema, loaded from the running application as a client would.

    The database is transactional so that uploads are committed and queued exactly as in production; queued
    analyses run at once, in the request.
    """
    monkeypatch.setattr(dispatch, "executor", lambda thread: InlineExecutor())
    settings.API_THROTTLE_RATE = None
    settings.UPLOAD_THROTTLE_RATE = None
    settings.API_MAX_WAIT_SECONDS = 0
    cache.clear()
    return schemathesis.openapi.from_wsgi(SCHEMA_URL, application)


class IdleExecutor:
    def submit(self, function, *args):
        pass


@pytest.fixture
def fuzz_data(api_schema, user, active_model, upload, monkeypatch):
    """A token and two analyses of its user: one finished (with its pictures), one still queued."""
    _, raw_token = api_token_create(user=user, name="fuzz")
    done = services.analysis_create(user=user, file=upload(seed=21), source="api").analysis
    with monkeypatch.context() as idle:
        idle.setattr(dispatch, "executor", lambda thread: IdleExecutor())
        queued = services.analysis_create(user=user, file=upload(seed=22), source="api").analysis
    assert Analysis.objects.get(pk=done.pk).status == Analysis.Status.DONE
    assert Analysis.objects.get(pk=queued.pk).status == Analysis.Status.QUEUED
    return {"token": raw_token, "ids": [str(done.public_id), str(queued.public_id)]}


OPERATIONS = [
    "GET /api/v1/analyses/",
    "POST /api/v1/analyses/",
    "GET /api/v1/analyses/{public_id}/",
    "DELETE /api/v1/analyses/{public_id}/",
    "GET /api/v1/analyses/{public_id}/images/{kind}/",
    "GET /api/v1/analyses/{public_id}/faces/{number}/image/",
    "GET /api/v1/analyses/{public_id}/images/frames/{number}/",
    "GET /api/v1/analyses/{public_id}/flag/",
    "POST /api/v1/analyses/{public_id}/flag/",
    "GET /api/v1/models/",
    "GET /api/v1/models/active/",
    "GET /api/v1/batches/",
    "POST /api/v1/batches/",
    "GET /api/v1/batches/{public_id}/",
    "DELETE /api/v1/batches/{public_id}/",
    "GET /api/v1/batches/{public_id}/export.csv",
]
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=lambda mode: mode.value)
@pytest.mark.parametrize("label", OPERATIONS)
def test_the_live_api_never_fails_and_always_answers_as_documented(api_schema, fuzz_data, label, mode):
    """Schemathesis generates requests from the schema (valid ones, then invalid ones) and checks every answer.

    The checks: no 5xx, only documented status codes and content types, and bodies and headers that match the
    schema. Random IDs only ever find nothing, so each request is also sent about the user's own analyses.
    """
    operation = api_schema.find_operation_by_label(label)
    headers = {"Authorization": f"Bearer {fuzz_data['token']}"}

    @given(case=operation.as_strategy(generation_mode=mode))
    @hypothesis_settings(
        max_examples=30,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    def fuzz(case):
        case.call_and_validate(headers=headers, checks=CHECKS)
        if "public_id" in (case.path_parameters or {}):
            for public_id in fuzz_data["ids"]:
                case.path_parameters["public_id"] = public_id
                case.call_and_validate(headers=headers, checks=CHECKS)

    fuzz()
