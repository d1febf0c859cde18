"""Upload bodies are bounded before they are read, on the pages and in the API; files per request are bounded."""

import pytest
from django.test import Client

from detection.models import Analysis

pytestmark = pytest.mark.django_db
UPLOAD_URL = "/analyses/new/"


class BodyNeverRead:
    """A request body that fails the test if anything reads it."""

    def read(self, *args):
        raise AssertionError("the body was read")

    readline = read


def raw_post(client: Client, path: str, *, length: str | None, **extra):
    environ = {"REQUEST_METHOD": "POST", "PATH_INFO": path, "wsgi.input": BodyNeverRead()}
    environ["CONTENT_TYPE"] = "multipart/form-data; boundary=xyz"
    if length is not None:
        environ["CONTENT_LENGTH"] = length
    return client.request(**environ, **extra)


@pytest.mark.parametrize("path", [UPLOAD_URL, "/api/v1/analyses/"])
def test_a_body_larger_than_the_path_accepts_is_413_before_it_is_read(user_client, settings, path):
    files = settings.MAX_FILE_SIZE * (settings.MAX_FILES_PER_UPLOAD if path == UPLOAD_URL else 1)
    limit = max(files, settings.MAX_VIDEO_SIZE)

    response = raw_post(user_client, path, length=str(limit + 10 * 1024 * 1024))

    assert response.status_code == 413
    assert (
        f"images up to {settings.MAX_FILE_SIZE_MB} MB and videos up to {settings.MAX_VIDEO_SIZE_MB} MB are accepted"
        in response.content.decode()
    )


@pytest.mark.parametrize("path", [UPLOAD_URL, "/api/v1/analyses/"])
def test_a_body_without_a_size_is_411_before_it_is_read(user_client, path):
    response = raw_post(user_client, path, length=None, HTTP_TRANSFER_ENCODING="chunked")

    assert response.status_code == 411
    assert "did not say how large it is" in response.content.decode()


def test_a_file_over_the_limit_in_a_page_upload_is_never_stored_and_the_others_go_through(
    user_client, active_model, upload, run_inline, settings, _media_in_tmp
):
    settings.MAX_FILE_SIZE_MB = 1
    settings.MAX_FILE_SIZE = 1024 * 1024
    settings.MAX_VIDEO_SIZE_MB, settings.MAX_VIDEO_SIZE = 1, 1024 * 1024

    with run_inline():
        response = user_client.post(
            UPLOAD_URL, {"files": [upload("ok.jpg", seed=1), upload("big.png", data=b"\x89PNG" + b"0" * 3_000_000)]}
        )

    page = response.content.decode()
    assert response.status_code == 201
    assert "“big.png” is over 1 MB; images up to 1 MB and videos up to 1 MB are accepted." in page
    assert list(Analysis.objects.values_list("original_name", flat=True)) == ["ok.jpg"]


def test_more_files_than_one_request_may_carry_are_refused_with_the_reason(user_client, active_model, upload, settings):
    files = [upload(f"photo-{n}.jpg", seed=n) for n in range(settings.MAX_FILES_PER_UPLOAD + 1)]

    response = user_client.post(UPLOAD_URL, {"files": files})

    assert response.status_code == 400
    assert f"Send at most {settings.MAX_FILES_PER_UPLOAD} files at once." in response.content.decode()
    assert not Analysis.objects.exists()


def test_the_page_upload_is_limited_per_user_file_by_file(user_client, active_model, upload, run_inline, settings):
    settings.UPLOAD_THROTTLE_RATE = "2/hour"

    with run_inline():
        response = user_client.post(UPLOAD_URL, {"files": [upload(f"p{n}.jpg", seed=n) for n in range(3)]})

    page = response.content.decode()
    assert response.status_code == 201
    assert "Too many uploads: “p2.jpg” was not analysed." in page
    assert Analysis.objects.count() == 2


def test_api_tokens_per_user_are_capped(user):
    from django.core.exceptions import ValidationError

    from accounts.services import MAX_ACTIVE_TOKENS, api_token_create, api_token_revoke

    tokens = [api_token_create(user=user, name=f"token {n}")[0] for n in range(MAX_ACTIVE_TOKENS)]
    with pytest.raises(ValidationError, match="10 active tokens, the most allowed"):
        api_token_create(user=user, name="one too many")

    api_token_revoke(user=user, token_id=tokens[0].pk)
    assert api_token_create(user=user, name="one too many")[0].is_active
