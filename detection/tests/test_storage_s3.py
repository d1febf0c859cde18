"""S3 storage, for real: boto3 against a moto S3 server on 127.0.0.1, configured by the production variables."""

import io
import socket
import urllib.request
from urllib.parse import parse_qs, urlparse

import pytest
from PIL import Image

from detection import services
from detection.errors import StorageUnavailable
from detection.models import Analysis
from detection.storage import file_signed_url

pytestmark = pytest.mark.django_db


def unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def analysis_keys(bucket) -> list[str]:
    return [key for key in bucket.object_keys() if not key.startswith("models/")]


def test_an_analysis_stores_its_files_in_the_bucket_and_deleting_it_removes_them(
    user, s3_bucket, active_model, upload, make_image_bytes, run_inline
):
    with run_inline():
        analysis = services.analysis_create(user=user, file=upload(fmt="PNG", seed=3), source="web").analysis
    analysis.refresh_from_db()

    assert analysis.status == Analysis.Status.DONE, analysis.error_message
    public_id = analysis.public_id
    assert analysis_keys(s3_bucket) == sorted(
        [
            f"originals/{public_id}.png",
            f"results/{public_id}-heatmap.png",
            f"results/{public_id}-overlay.webp",
            f"results/{public_id}-thumbnail.webp",
        ]
    )
    # What is in the bucket is the upload itself and real pictures, read back with plain boto3.
    assert s3_bucket.read(f"originals/{public_id}.png") == make_image_bytes(fmt="PNG", seed=3)
    assert Image.open(io.BytesIO(s3_bucket.read(f"results/{public_id}-heatmap.png"))).format == "PNG"
    # The model's weights went to the bucket too, and the worker ran from its local copy of them.
    assert s3_bucket.object_keys()[0].startswith("models/")

    with run_inline():
        services.analysis_delete(analysis=analysis)

    assert analysis_keys(s3_bucket) == []
    assert not Analysis.objects.exists()


def test_objects_are_private_and_signed_urls_expire(user, s3_bucket, active_model, upload, run_inline, settings):
    with run_inline():
        analysis = services.analysis_create(user=user, file=upload(), source="web").analysis
    analysis.refresh_from_db()
    endpoint = s3_bucket.endpoint

    # moto, like S3, lets anyone read an object whose ACL grants it: the product grants nothing.
    acl = s3_bucket.client.get_object_acl(Bucket=s3_bucket.name, Key=analysis.heatmap.name)
    assert [grant["Permission"] for grant in acl["Grants"]] == ["FULL_CONTROL"]
    assert "URI" not in acl["Grants"][0]["Grantee"]  # no AllUsers / AuthenticatedUsers group

    url = file_signed_url(analysis.heatmap)
    query = parse_qs(urlparse(url).query)
    assert url.startswith(f"{endpoint}/{s3_bucket.name}/results/{analysis.public_id}-heatmap.png?")
    assert query["X-Amz-Expires"] == ["300"] and "X-Amz-Signature" in query
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 (the test's own server)
        assert response.status == 200 and response.read() == s3_bucket.read(analysis.heatmap.name)


def test_local_files_have_no_signed_url(user, active_model, upload, run_inline):
    with run_inline():
        analysis = services.analysis_create(user=user, file=upload(), source="web").analysis
    analysis.refresh_from_db()

    assert file_signed_url(analysis.heatmap) is None and file_signed_url(analysis.original) is None


def test_an_unreachable_s3_refuses_the_upload_and_keeps_nothing(
    user, s3_bucket, active_model, upload, settings, monkeypatch
):
    from deepfake_site.storage_config import storages_from_env

    # Nothing listens on this port: every request is refused at once.
    monkeypatch.setenv("AWS_S3_ENDPOINT_URL", f"http://127.0.0.1:{unused_port()}")
    monkeypatch.setenv("STORAGE_TIMEOUT", "1")
    down = storages_from_env(media_root=settings.MEDIA_ROOT, debug=True)["default"]
    settings.STORAGES = {**settings.STORAGES, "default": down}

    with pytest.raises(StorageUnavailable, match=r"could not be stored \(.*\)\. Nothing was saved"):
        services.analysis_create(user=user, file=upload(), source="web")

    assert not Analysis.objects.exists()
    assert analysis_keys(s3_bucket) == []


def test_s3_going_down_while_saving_results_fails_the_analysis_and_leaves_no_results(
    user, s3_bucket, active_model, upload, settings, monkeypatch
):
    from deepfake_site.storage_config import storages_from_env

    analysis = services.analysis_create(user=user, file=upload(), source="web").analysis
    monkeypatch.setenv("AWS_S3_ENDPOINT_URL", f"http://127.0.0.1:{unused_port()}")
    monkeypatch.setenv("STORAGE_TIMEOUT", "1")
    settings.STORAGES = {
        **settings.STORAGES,
        "results": storages_from_env(media_root=settings.MEDIA_ROOT, debug=True)["results"],
    }

    services.analysis_run(analysis_id=analysis.pk)

    analysis.refresh_from_db()
    assert analysis.status == Analysis.Status.FAILED
    assert analysis.error_message.startswith("The results could not be stored (EndpointConnectionError: ")
    assert analysis.error_message.endswith("Please try again later.")
    assert not (analysis.thumbnail or analysis.heatmap or analysis.overlay)
    assert analysis_keys(s3_bucket) == [f"originals/{analysis.public_id}.jpg"]  # kept for a new attempt


def test_the_owner_checked_view_streams_pictures_from_s3(
    user_client, user, other_user, s3_bucket, active_model, upload, run_inline, client
):
    from django.urls import reverse

    with run_inline():
        analysis = services.analysis_create(user=user, file=upload(fmt="PNG"), source="web").analysis
    url = reverse("detection:analysis_image", args=[analysis.public_id, "original"])

    response = user_client.get(url)

    assert response.status_code == 200 and response["Content-Type"] == "image/png"
    assert b"".join(response.streaming_content) == s3_bucket.read(f"originals/{analysis.public_id}.png")
    client.force_login(other_user)
    assert client.get(url).status_code == 404
