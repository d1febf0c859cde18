"""Analyses of a file fetched from a URL (POST /api/v1/analyses/ with `url`), served by a real server on 127.0.0.1."""

import pytest
from django.urls import reverse

from detection.models import Analysis
from detection.tests.http_servers import Answer, LocalServer

API = "/api/v1/analyses/"


@pytest.fixture
def local_network(settings):
    settings.OUTBOUND_ALLOW_PRIVATE_NETWORKS = True


def error_of(response) -> tuple[int, str, str]:
    body = response.json()["error"]
    return response.status_code, body["code"], body["message"]


@pytest.mark.parametrize("fmt", ["json", "multipart"])
def test_an_image_at_a_url_is_analysed(db, local_network, api_client, active_model, run_inline, make_image_bytes, fmt):
    jpeg = make_image_bytes(fmt="JPEG", seed=3)
    with LocalServer(Answer(200, jpeg, {"Content-Type": "image/jpeg"})) as server:
        url = server.url("/pictures/holiday%20photo.jpg?size=large")
        with run_inline():
            response = api_client.post(API, {"url": url, "keep_original": True}, format=fmt)
    assert response.status_code == 202, response.content
    analysis = Analysis.objects.get()
    assert (analysis.source_url, analysis.original_name, analysis.file_size) == (url, "holiday photo.jpg", len(jpeg))
    assert analysis.source == Analysis.Source.API
    done = api_client.get(response["Location"]).json()
    assert done["status"] == "done" and done["file_name"] == "holiday photo.jpg"


def test_file_and_url_together_or_neither_are_refused(db, api_client, upload):
    both = api_client.post(API, {"file": upload(), "url": "https://example.com/a.jpg"})
    assert error_of(both)[:2] == (400, "file_and_url")
    neither = api_client.post(API, {}, format="json")
    status, code, message = error_of(neither)
    assert (status, code) == (400, "missing_file") and "“url”" in message


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9/x.jpg",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/x.jpg",
        "ftp://example.com/x.jpg",
        "file:///etc/passwd",
    ],
)
def test_an_unsafe_url_is_refused(db, settings, api_client, url):
    settings.OUTBOUND_ALLOW_PRIVATE_NETWORKS = False
    status, code, _ = error_of(api_client.post(API, {"url": url}, format="json"))
    assert (status, code) == (400, "unsafe_url")
    assert not Analysis.objects.exists()


def test_a_url_answering_404_is_a_fetch_failure(db, local_network, api_client, active_model):
    with LocalServer(Answer(404, b"no")) as server:
        status, code, message = error_of(api_client.post(API, {"url": server.url("/missing.jpg")}, format="json"))
    assert (status, code) == (400, "url_fetch_failed") and "HTTP 404 (Not Found)" in message


def test_an_unreachable_url_is_a_fetch_failure(db, local_network, api_client, active_model):
    server = LocalServer()
    url = server.url("/x.jpg")
    server.httpd.server_close()  # nothing listens there any more
    status, code, message = error_of(api_client.post(API, {"url": url}, format="json"))
    assert (status, code) == (400, "url_fetch_failed") and "could not be reached" in message


def test_a_file_too_large_is_refused_with_413(db, local_network, settings, api_client, active_model):
    settings.MAX_FILE_SIZE = settings.MAX_VIDEO_SIZE = 1000
    with LocalServer(Answer(200, b"\xff" * 5000)) as server:
        status, code, _ = error_of(api_client.post(API, {"url": server.url("/big.jpg")}, format="json"))
    assert (status, code) == (413, "file_too_large")


def test_a_web_page_is_refused_with_415(db, local_network, api_client, active_model):
    page = b"<!doctype html><html><body>Not a picture</body></html>"
    with LocalServer(Answer(200, page, {"Content-Type": "text/html"})) as server:
        status, code, _ = error_of(api_client.post(API, {"url": server.url("/gallery")}, format="json"))
    assert (status, code) == (415, "unsupported_media_type")


def test_a_url_that_is_not_a_string_is_refused(db, api_client):
    status, code, _ = error_of(api_client.post(API, {"url": ["a", "b"]}, format="json"))
    assert (status, code) == (400, "invalid_parameter")
    status, code, _ = error_of(api_client.post(API, [1, 2], format="json"))
    assert (status, code) == (400, "invalid_parameter")


def test_the_schema_documents_url(db, client):
    schema = client.get(reverse("api-schema"), HTTP_ACCEPT="application/json").json()
    request_body = schema["paths"]["/api/v1/analyses/"]["post"]["requestBody"]["content"]
    assert {"multipart/form-data", "application/json"} <= set(request_body)
    components = schema["components"]["schemas"]
    assert "url" in components["AnalysisUploadRequest"]["properties"]


def test_the_upload_page_fetches_and_analyses_a_file_from_a_url(
    user_client, active_model, settings, make_image_bytes, upload
):
    settings.OUTBOUND_ALLOW_PRIVATE_NETWORKS = True
    assert 'name="url"' in user_client.get(reverse("detection:upload")).content.decode()

    jpeg = make_image_bytes(320, 240)
    with LocalServer(Answer(200, jpeg, {"Content-Type": "image/jpeg"})) as server:
        response = user_client.post(reverse("detection:upload"), {"url": server.url("/photo.jpg")})
    assert response.status_code == 201, response.content
    analysis = Analysis.objects.get()
    assert analysis.source_url == server.url("/photo.jpg") and analysis.original_name == "photo.jpg"

    settings.OUTBOUND_ALLOW_PRIVATE_NETWORKS = False
    refused = user_client.post(reverse("detection:upload"), {"url": "http://127.0.0.1/x.jpg"})
    assert refused.status_code == 400 and "field-error" in refused.content.decode()
    both = user_client.post(reverse("detection:upload"), {"url": server.url("/photo.jpg"), "files": upload("a.jpg")})
    assert both.status_code == 400 and "not both" in both.content.decode()
    assert Analysis.objects.count() == 1
