"""Response headers: the Content-Security-Policy, pictures never cached, HEAD on pictures, one rule for filters."""

import pytest
from django.urls import reverse

from detection import services

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("path", ["/", "/accounts/login/", "/api/docs/", "/api/redoc/", "/admin/login/"])
def test_every_page_has_a_strict_content_security_policy(client, path):
    policy = client.get(path)["Content-Security-Policy"]

    directives = dict(part.strip().split(" ", 1) for part in policy.split(";") if part.strip())
    assert directives["default-src"] == "'self'"
    assert directives["script-src"] == "'self'"  # no inline or evaluated script anywhere
    assert directives["frame-ancestors"] == "'none'" and directives["object-src"] == "'none'"


def test_the_api_docs_pages_have_no_inline_script_and_load_nothing_from_elsewhere(client):
    for path in ("/api/docs/", "/api/redoc/"):
        page = client.get(path).content.decode()
        assert "<script>" not in page and "googleapis" not in page, path
    script = client.get("/api/docs/?script=")
    assert script.status_code == 200 and "SwaggerUIBundle" in script.content.decode()


def test_pictures_are_never_cached_and_answer_head(user, user_client, active_model, upload, run_inline):
    with run_inline():
        analysis = services.analysis_create(user=user, file=upload(), source="web").analysis
    url = reverse("detection:analysis_image", args=[analysis.public_id, "overlay"])

    response = user_client.get(url)
    head = user_client.head(url)

    assert response["Cache-Control"] == "private, no-store"
    assert head.status_code == 200 and head["Content-Type"] == "image/webp"


@pytest.mark.parametrize("query", ["created_from=yesterday", "sort=sideways", "created_to=2026-13-40"])
def test_a_bad_filter_is_400_on_the_page_and_in_the_api(user_client, user, query):
    from accounts.services import api_token_create

    token = api_token_create(user=user, name="filters")[1]
    page = user_client.get(f"/analyses/?{query}")
    api_query = query.replace("sort=", "ordering=")
    api = user_client.get(f"/api/v1/analyses/?{api_query}", HTTP_AUTHORIZATION=f"Bearer {token}")

    assert page.status_code == api.status_code == 400
