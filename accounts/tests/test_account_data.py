"""The user's own data: "download all my data" (a ZIP of JSON and pictures) and deleting the account with every file
its analyses own, on local disk and on S3; a failing storage never leaves files without their rows."""

import io
import json
import zipfile

import pytest
from django.urls import reverse

from accounts import services as account_services
from accounts.models import ApiToken, User
from detection import services
from detection.models import Analysis

pytestmark = pytest.mark.django_db


def media_files(media) -> list[str]:
    return sorted(p.name for p in media.rglob("*") if p.is_file() and "models" not in p.parts)


def submit(user, upload, run_inline, **options) -> Analysis:
    keep_original = options.pop("keep_original", None)
    with run_inline():
        analysis = services.analysis_create(
            user=user, file=upload(**options), source="web", keep_original=keep_original
        ).analysis
    analysis.refresh_from_db()
    assert analysis.status == Analysis.Status.DONE, analysis.error_message
    return analysis


def read(field) -> bytes:
    with field.open("rb") as handle:
        return handle.read()


def test_download_all_my_data_is_a_zip_of_json_and_every_stored_picture(
    user_client, user, other_user, active_model, upload, run_inline
):
    kept = submit(user, upload, run_inline, name="holiday.png", fmt="PNG", seed=1)
    unkept = submit(user, upload, run_inline, name="secret.jpg", seed=2, keep_original=False)
    submit(other_user, upload, run_inline, name="not-yours.jpg", seed=3)
    _, raw_token = account_services.api_token_create(user=user, name="laptop")

    response = user_client.get(reverse("accounts:data_export"))

    assert response.status_code == 200 and response["Content-Type"] == "application/zip"
    assert response["Content-Disposition"].startswith('attachment; filename="alice-data-')
    archive = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))
    assert archive.testzip() is None
    account = json.loads(archive.read("account.json"))
    assert account["username"] == "alice" and account["email"] == "alice@example.com"
    token = ApiToken.objects.get(user=user)
    assert account["api_tokens"] == [
        {
            "name": "laptop",
            "hint": token.hint,
            "created_at": token.created_at.isoformat(),
            "last_used_at": None,
            "revoked_at": None,
        }
    ]
    everything = b"".join(archive.read(name) for name in archive.namelist())
    assert raw_token.encode() not in everything and token.token_hash.encode() not in everything

    records = json.loads(archive.read("analyses.json"))
    assert [r["file_name"] for r in records] == ["holiday.png", "secret.jpg"]  # only this user's, oldest first
    first, second = records
    assert first["id"] == str(kept.public_id) and first["result"]["verdict"] == kept.verdict
    assert first["result"]["probability_fake"] == kept.probability_fake
    assert first["model"]["version"] == "test-detector 1"
    assert first["image"]["sha256"] == kept.sha256 and (first["image"]["width"], first["image"]["height"]) == (320, 240)
    folder = f"analyses/{kept.public_id}"
    assert first["files"] == {
        "original": f"{folder}/original.png",
        "thumbnail": f"{folder}/thumbnail.webp",
        "heatmap": f"{folder}/heatmap.png",
        "overlay": f"{folder}/overlay.webp",
    }
    assert archive.read(f"{folder}/original.png") == read(kept.original)
    assert archive.read(f"{folder}/heatmap.png") == read(kept.heatmap)
    assert second["image"]["keep_original"] is False and second["files"]["original"] is None
    assert archive.read(second["files"]["overlay"]) == read(unkept.overlay)
    assert len([n for n in archive.namelist() if n.startswith("analyses/")]) == 7
    assert "README.txt" in archive.namelist()


def test_the_export_needs_a_signed_in_user(client):
    response = client.get(reverse("accounts:data_export"))

    assert response.status_code == 302 and response["Location"].startswith(reverse("accounts:login"))


def test_a_picture_gone_meanwhile_is_listed_as_missing(user_client, user, active_model, upload, run_inline):
    analysis = submit(user, upload, run_inline)
    analysis.heatmap.storage.delete(analysis.heatmap.name)

    response = user_client.get(reverse("accounts:data_export"))

    archive = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))
    (record,) = json.loads(archive.read("analyses.json"))
    assert record["files"]["heatmap"] is None and record["files"]["overlay"] is not None


class UnavailableStorage:
    """A storage whose service is down: reads and deletions of stored files fail."""

    def __init__(self, real, *, fail_after: int = 0):
        self.real, self.fail_after, self.calls = real, fail_after, 0

    def __getattr__(self, name):
        return getattr(self.real, name)

    def _maybe_fail(self):
        self.calls += 1
        if self.calls > self.fail_after:
            raise ConnectionError("storage service unavailable")

    def open(self, name, mode="rb"):
        self._maybe_fail()
        return self.real.open(name, mode)

    def delete(self, name):
        self._maybe_fail()
        self.real.delete(name)


def test_an_unreadable_storage_stops_the_export_with_a_message(
    user_client, user, active_model, upload, run_inline, monkeypatch
):
    submit(user, upload, run_inline)
    field = Analysis._meta.get_field("thumbnail")
    monkeypatch.setattr(field, "storage", UnavailableStorage(field.storage))

    response = user_client.get(reverse("accounts:data_export"))

    assert response.status_code == 503
    assert "Your data could not be exported: the file storage did not answer (ConnectionError)." in (
        response.content.decode()
    )


def test_deleting_the_account_needs_the_password_and_then_removes_everything(
    user_client, user, other_user, password, active_model, upload, run_inline, _media_in_tmp
):
    submit(user, upload, run_inline, seed=1)
    submit(user, upload, run_inline, seed=2, keep_original=False)
    theirs = submit(other_user, upload, run_inline, seed=3)
    account_services.api_token_create(user=user, name="laptop")
    url = reverse("accounts:account_delete")

    page = user_client.get(url)
    assert page.status_code == 200 and "all 2 of its analyses" in page.content.decode()
    wrong = user_client.post(url, {"password": "not-it"})
    assert wrong.status_code == 400
    assert "That is not your password; your account was not deleted." in wrong.content.decode()
    assert User.objects.filter(pk=user.pk).exists() and len(media_files(_media_in_tmp)) == 4 + 3 + 4

    with run_inline():
        response = user_client.post(url, {"password": password})

    assert response.status_code == 302 and response["Location"] == reverse("home")
    assert not User.objects.filter(pk=user.pk).exists()
    assert not ApiToken.objects.exists()
    assert list(Analysis.objects.all()) == [theirs]
    assert media_files(_media_in_tmp) == sorted(file.name.rsplit("/", 1)[-1] for file in theirs.owned_files())
    assert user_client.get(reverse("accounts:profile")).status_code == 302  # signed out


def test_a_storage_failing_half_way_keeps_the_account_and_a_retry_finishes(
    user, active_model, upload, run_inline, monkeypatch, _media_in_tmp
):
    submit(user, upload, run_inline, seed=1)
    submit(user, upload, run_inline, seed=2)
    field = Analysis._meta.get_field("heatmap")
    real = field.storage
    monkeypatch.setattr(field, "storage", UnavailableStorage(real, fail_after=1))

    with pytest.raises(account_services.AccountStorageError, match="Your account is still here"):
        account_services.user_delete(user=user)

    assert User.objects.filter(pk=user.pk).exists() and Analysis.objects.count() == 2
    assert 0 < len(media_files(_media_in_tmp)) < 8  # some pictures went; every remaining one has its row
    monkeypatch.setattr(field, "storage", real)

    with run_inline():
        account_services.user_delete(user=user)

    assert not User.objects.filter(pk=user.pk).exists() and not Analysis.objects.exists()
    assert media_files(_media_in_tmp) == []


def test_deleting_an_account_empties_its_part_of_the_s3_bucket(user, s3_bucket, active_model, upload, run_inline):
    submit(user, upload, run_inline, seed=1)
    submit(user, upload, run_inline, seed=2)
    assert len([k for k in s3_bucket.object_keys() if not k.startswith("models/")]) == 8

    with run_inline():
        account_services.user_delete(user=user)

    assert [k for k in s3_bucket.object_keys() if not k.startswith("models/")] == []
    assert not Analysis.objects.exists()
