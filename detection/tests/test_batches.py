"""Batches in the API: several files or one ZIP in one request, each file an analysis under the single upload's rules;
their progress, export and deletion; ZIPs checked from their headers before anything is extracted."""

import csv
import io
import struct
import time
import zipfile

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import RequestFactory

from conftest import picture
from detection.middleware import MULTIPART_OVERHEAD, UploadSizeLimitMiddleware
from detection.models import Analysis, AnalysisBatch
from detection.presentation import CSV_COLUMNS
from detection.services.batches import batch_body_limit
from detection.tests.test_upload_limits import raw_post
from ml.video import video_write

pytestmark = pytest.mark.django_db
BATCHES_URL = "/api/v1/batches/"


def batch_url(batch_id) -> str:
    return f"{BATCHES_URL}{batch_id}/"


def as_upload(name: str, data: bytes) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, data, content_type="application/octet-stream")


def zip_bytes(entries: dict[str, bytes], *, compression=zipfile.ZIP_DEFLATED) -> bytes:
    """A ZIP of the entries; a name ending in "/" is a folder."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=compression) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def zip_headers_patched(data: bytes, name: str, *, file_size: int | None = None, flags: int = 0) -> bytes:
    """The ZIP with the entry's headers (local and central) changed as a hostile ZIP would have them: another
    declared size, or more general-purpose flag bits (bit 0: encrypted)."""
    patched = bytearray(data)
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        local = archive.getinfo(name).header_offset
        central = archive.start_dir
    fields = [(local, 6, 22)]  # a local header: flags at +6, uncompressed size at +22
    while patched[central : central + 4] == b"PK\x01\x02":
        name_length, extra_length, comment_length = struct.unpack_from("<HHH", patched, central + 28)
        if patched[central + 46 : central + 46 + name_length].decode() == name:
            fields.append((central, 8, 24))  # a central header: flags at +8, uncompressed size at +24
        central += 46 + name_length + extra_length + comment_length
    for offset, flags_at, size_at in fields:
        struct.pack_into(
            "<H", patched, offset + flags_at, struct.unpack_from("<H", patched, offset + flags_at)[0] | flags
        )
        if file_size is not None:
            struct.pack_into("<I", patched, offset + size_at, file_size)
    return bytes(patched)


@pytest.fixture
def video_bytes(tmp_path):
    path = tmp_path / "clip.mp4"
    video_write(path, (picture(160, 120, seed=index) for index in range(20)), fps=10)
    return path.read_bytes()


def post_files(api_client, *files):
    return api_client.post(BATCHES_URL, {"files": list(files)}, format="multipart")


def post_zip(api_client, data: bytes, name: str = "photos.zip"):
    return api_client.post(BATCHES_URL, {"file": as_upload(name, data)}, format="multipart")


def assert_refused(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    error = response.json()["error"]
    assert error["code"] == code and len(error["message"]) > 20, error
    assert not AnalysisBatch.objects.exists()
    return response.json()


# --- Several files --------------------------------------------------------------------------------------------


def test_several_files_become_one_batch_and_a_refused_file_only_refuses_itself(
    api_client, user, active_model, upload, make_image_bytes, run_inline
):
    photo = make_image_bytes(seed=1)
    with run_inline():
        response = post_files(
            api_client,
            as_upload("first.jpg", photo),
            upload("notes.txt", data=b"just some words, not a picture"),
            as_upload("same-again.jpg", photo),
            upload("second.png", fmt="PNG", seed=2),
        )

    assert response.status_code == 202, response.content
    body = response.json()
    assert response["Location"] == body["url"] == f"http://testserver{batch_url(body['id'])}"
    names = [(file["name"], file["reused"], (file["error"] or {}).get("code")) for file in body["files"]]
    assert names == [
        ("first.jpg", False, None),
        ("notes.txt", False, "unsupported_media_type"),
        ("same-again.jpg", True, None),
        ("second.png", False, None),
    ]
    first, _, again, second = body["files"]
    assert again["analysis"]["id"] == first["analysis"]["id"]
    assert "notes.txt" in body["files"][1]["error"]["message"]
    batch = AnalysisBatch.objects.get(public_id=body["id"])
    assert batch.owner == user and batch.source == "api"
    assert sorted(batch.analyses.values_list("original_name", flat=True)) == ["first.jpg", "second.png"]

    detail = api_client.get(batch_url(body["id"])).json()  # the analyses ran as the request's work committed
    assert detail["progress"] == {"total": 2, "queued": 0, "running": 0, "done": 2, "failed": 0, "percent": 100}
    assert [analysis["file_name"] for analysis in detail["analyses"]] == ["first.jpg", "second.png"]
    assert detail["analyses"][0]["id"] == first["analysis"]["id"] and second["analysis"]["status"] == "queued"
    assert detail["analyses"][0]["result"]["verdict"] in {"real", "fake", "uncertain"}


def test_progress_counts_the_queued_and_reaches_100_percent_once_they_run(api_client, active_model, upload):
    response = post_files(api_client, upload("a.jpg", seed=1), upload("b.jpg", seed=2))
    batch_id = response.json()["id"]
    assert response.json()["progress"] == {"total": 2, "queued": 2, "running": 0, "done": 0, "failed": 0, "percent": 0}

    from detection import services

    first = Analysis.objects.filter(batch__public_id=batch_id).order_by("id").first()
    services.analysis_run(analysis_id=first.pk)
    assert api_client.get(batch_url(batch_id)).json()["progress"]["percent"] == 50
    for analysis in Analysis.objects.filter(batch__public_id=batch_id, status="queued"):
        services.analysis_run(analysis_id=analysis.pk)
    assert api_client.get(batch_url(batch_id)).json()["progress"] == {
        "total": 2, "queued": 0, "running": 0, "done": 2, "failed": 0, "percent": 100
    }  # fmt: skip


def test_a_file_identical_to_an_earlier_upload_is_answered_by_it_and_stays_out_of_the_batch(
    api_client, user, active_model, upload, run_inline
):
    from detection import services

    with run_inline():
        earlier = services.analysis_create(user=user, file=upload("earlier.jpg", seed=5), source="api").analysis
    with run_inline():
        body = post_files(api_client, upload("copy.jpg", seed=5), upload("new.jpg", seed=6)).json()

    assert [file["reused"] for file in body["files"]] == [True, False]
    assert body["files"][0]["analysis"]["id"] == str(earlier.public_id)
    earlier.refresh_from_db()
    assert earlier.batch is None  # deleting the batch must never delete it
    assert api_client.delete(batch_url(body["id"])).status_code == 204
    assert Analysis.objects.filter(pk=earlier.pk).exists()


def test_every_file_refused_stores_no_batch_and_says_why_for_each(api_client, active_model, upload):
    response = post_files(api_client, upload("a.txt", data=b"words"), upload("b.txt", data=b"more words"))

    body = assert_refused(response, 415, "unsupported_media_type")
    assert [file["error"]["code"] for file in body["files"]] == ["unsupported_media_type"] * 2
    assert not Analysis.objects.exists()


def test_nothing_sent_and_both_fields_at_once_are_400(api_client, active_model, upload):
    assert_refused(api_client.post(BATCHES_URL, {}, format="multipart"), 400, "missing_file")
    both = api_client.post(
        BATCHES_URL, {"files": [upload("a.jpg")], "file": as_upload("b.zip", zip_bytes({}))}, format="multipart"
    )
    assert_refused(both, 400, "invalid_parameter")


def test_more_files_than_a_batch_takes_are_refused_whole(api_client, active_model, upload, settings):
    settings.MAX_FILES_PER_BATCH = 2

    response = post_files(api_client, *(upload(f"{n}.jpg", seed=n) for n in range(3)))
    assert_refused(response, 400, "too_many_files")
    zipped = zip_bytes({f"{n}.jpg": b"x" for n in range(3)})
    assert_refused(post_zip(api_client, zipped), 400, "too_many_files")
    settings.DATA_UPLOAD_MAX_NUMBER_FILES = 2  # Django's parser stops counting here, before any file is stored
    response = post_files(api_client, *(upload(f"{n}.jpg", seed=n) for n in range(3)))
    assert_refused(response, 400, "too_many_files")
    assert not Analysis.objects.exists()


def test_each_file_counts_as_one_upload_and_the_rest_of_a_batch_over_the_limit_is_refused_in_the_answer(
    api_client, active_model, upload, settings
):
    settings.UPLOAD_THROTTLE_RATE = "2/hour"

    body = post_files(api_client, *(upload(f"{n}.jpg", seed=n) for n in range(3))).json()
    assert [(file["error"] or {}).get("code") for file in body["files"]] == [None, None, "throttled"]
    assert body["progress"]["total"] == 2

    response = post_files(api_client, upload("late.jpg", seed=9))  # not one file can be accepted
    assert response.status_code == 429 and int(response["Retry-After"]) >= 1
    assert response.json()["error"]["code"] == "throttled" and response.json()["files"][0]["name"] == "late.jpg"
    assert AnalysisBatch.objects.count() == 1 and Analysis.objects.count() == 2


# --- ZIPs -----------------------------------------------------------------------------------------------------


def test_a_zip_becomes_a_batch_of_its_files_with_folders_hidden_files_and_macos_entries_skipped(
    api_client, active_model, make_image_bytes, video_bytes, run_inline
):
    archive = zip_bytes(
        {
            "holiday/": b"",
            "holiday/beach.jpg": make_image_bytes(seed=1),
            "holiday/.DS_Store": b"\0\0\0\1Bud1",
            "__MACOSX/holiday/._beach.jpg": b"\0\5\26\7 resource fork",
            "sunset.png": make_image_bytes(fmt="PNG", seed=2),
            "clip.mp4": video_bytes,
            "readme.txt": b"not a picture",
            "../../escape.jpg": make_image_bytes(seed=3),  # its name is shown, never used as a path
        }
    )
    with run_inline():
        response = post_zip(api_client, archive, "holiday.zip")

    assert response.status_code == 202, response.content
    body = response.json()
    assert body["name"] == "holiday.zip"
    outcomes = [(file["name"], (file["error"] or {}).get("code")) for file in body["files"]]
    assert outcomes == [
        ("beach.jpg", None),
        ("sunset.png", None),
        ("clip.mp4", None),
        ("readme.txt", "unsupported_media_type"),
        ("escape.jpg", None),
    ]
    kinds = {file["name"]: file["analysis"]["kind"] for file in body["files"] if file["analysis"]}
    assert kinds == {"beach.jpg": "image", "sunset.png": "image", "clip.mp4": "video", "escape.jpg": "image"}
    detail = api_client.get(batch_url(body["id"])).json()
    assert detail["progress"]["percent"] == 100 and detail["progress"]["done"] == 4, detail["progress"]


def test_a_zip_bomb_declaring_a_huge_size_is_refused_from_its_headers_without_inflating_it(
    api_client, active_model, make_image_bytes, monkeypatch
):
    honest = zip_bytes({"photo.jpg": make_image_bytes(), "zeros.jpg": b"\0" * 1024})
    bomb = zip_headers_patched(honest, "zeros.jpg", file_size=2**31)  # 2 GB of zeros, as its headers say
    monkeypatch.setattr(zipfile.ZipFile, "open", lambda *args, **kwargs: pytest.fail("an entry was extracted"))

    started = time.monotonic()
    response = post_zip(api_client, bomb, "bomb.zip")

    assert time.monotonic() - started < 5
    body = assert_refused(response, 413, "archive_too_large")
    assert "2048.0 MB" in body["error"]["message"] and "500 MB" in body["error"]["message"]


def test_a_zip_of_countless_folder_entries_is_refused_from_its_last_record_before_they_are_parsed(
    api_client, active_model, make_image_bytes, monkeypatch, settings
):
    settings.MAX_FILES_PER_BATCH = 3  # a ZIP may hold 30 entries in all
    folders = zip_bytes({f"d{number}/": b"" for number in range(40)} | {"photo.jpg": make_image_bytes()})
    monkeypatch.setattr(zipfile, "ZipFile", lambda *args, **kwargs: pytest.fail("the entries were parsed"))

    body = assert_refused(post_zip(api_client, folders, "folders.zip"), 400, "too_many_files")
    assert "41 entries" in body["error"]["message"] and "at most 30" in body["error"]["message"]


def test_a_zip_bomb_inflating_past_its_declared_size_is_stopped_at_that_size(
    api_client, active_model, make_image_bytes
):
    zeros = zip_bytes({"photo.jpg": make_image_bytes(), "small.jpg": b"\0" * (64 * 1024 * 1024)})
    assert len(zeros) < 200_000  # 64 MB of zeros, deflated
    bomb = zip_headers_patched(zeros, "small.jpg", file_size=1000)  # declares 1000 bytes

    started = time.monotonic()
    response = post_zip(api_client, bomb, "bomb.zip")

    assert time.monotonic() - started < 10
    assert response.status_code == 202, response.content
    photo, small = response.json()["files"]
    assert photo["analysis"] and photo["error"] is None
    assert small["error"]["code"] == "corrupt_archive" and "does not match" in small["error"]["message"]
    assert list(Analysis.objects.values_list("original_name", flat=True)) == ["photo.jpg"]


def test_an_entry_over_the_size_limit_is_refused_from_its_header_and_the_others_go_through(
    api_client, active_model, make_image_bytes, settings
):
    settings.MAX_FILE_SIZE_MB, settings.MAX_FILE_SIZE = 1, 1024 * 1024
    settings.MAX_VIDEO_SIZE_MB, settings.MAX_VIDEO_SIZE = 1, 1024 * 1024
    archive = zip_bytes({"ok.jpg": make_image_bytes(), "big.jpg": b"\0" * (3 * 1024 * 1024)})

    files = post_zip(api_client, archive).json()["files"]

    assert files[0]["error"] is None
    assert files[1]["error"]["code"] == "file_too_large" and "3.0 MB once extracted" in files[1]["error"]["message"]


@pytest.mark.parametrize(
    ("data", "status", "code"),
    [
        (b"PK\x03\x04 this is no zip at all", 400, "corrupt_archive"),
        (zip_bytes({"a.jpg": b"x" * 100})[:-30], 400, "corrupt_archive"),  # its central directory cut off
        (zip_headers_patched(zip_bytes({"a.jpg": b"x" * 100}), "a.jpg", flags=0x1), 400, "encrypted_archive"),
        (zip_bytes({"a.jpg": b"x" * 100}, compression=zipfile.ZIP_BZIP2), 400, "unsupported_archive"),
        (zip_bytes({"folder/": b"", ".hidden": b"x", "__MACOSX/._a.jpg": b"x"}), 400, "missing_file"),
    ],
    ids=["not-a-zip", "truncated", "encrypted", "bzip2", "nothing-usable"],
)
def test_a_zip_that_cannot_be_used_is_refused_with_the_reason(api_client, active_model, data, status, code):
    assert_refused(post_zip(api_client, data), status, code)


def test_the_batch_path_takes_a_larger_body_than_a_single_upload_and_still_refuses_unsized_or_larger_ones(
    user_client, settings
):
    request = RequestFactory().post(BATCHES_URL)
    assert UploadSizeLimitMiddleware.body_limit(request) == batch_body_limit() + MULTIPART_OVERHEAD
    assert batch_body_limit() == max(
        settings.MAX_FILES_PER_BATCH * settings.MAX_FILE_SIZE, settings.MAX_VIDEO_SIZE, settings.MAX_BATCH_UNCOMPRESSED
    )
    assert UploadSizeLimitMiddleware.is_upload(request)

    too_large = raw_post(user_client, BATCHES_URL, length=str(batch_body_limit() + 2 * MULTIPART_OVERHEAD))
    assert too_large.status_code == 413 and "per batch" in too_large.json()["error"]["message"]
    unsized = raw_post(user_client, BATCHES_URL, length=None, HTTP_TRANSFER_ENCODING="chunked")
    assert unsized.status_code == 411


# --- Reading, exporting, deleting -----------------------------------------------------------------------------


@pytest.fixture
def batch(api_client, active_model, upload, run_inline) -> dict:
    with run_inline():
        return post_files(api_client, upload("=cmd.jpg", seed=1), upload("b.png", fmt="PNG", seed=2)).json()


def test_the_list_shows_your_batches_newest_first_in_pages(api_client, batch, upload, run_inline):
    with run_inline():
        newer = post_files(api_client, upload("c.jpg", seed=3)).json()

    page = api_client.get(BATCHES_URL, {"page_size": 1}).json()

    assert page["count"] == 2 and [item["id"] for item in page["results"]] == [newer["id"]]
    assert page["results"][0]["progress"]["percent"] == 100
    assert api_client.get(BATCHES_URL, {"page": 2, "page_size": 1}).json()["results"][0]["id"] == batch["id"]


def test_the_export_is_the_history_csv_of_the_batch_or_its_json(api_client, batch):
    response = api_client.get(batch["export_url"])

    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    assert f'filename="batch-{batch["id"]}.csv"' in response["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert rows[0] == CSV_COLUMNS
    assert [row[CSV_COLUMNS.index("file_name")] for row in rows[1:]] == ["'=cmd.jpg", "b.png"]  # formula defused
    assert {row[CSV_COLUMNS.index("status")] for row in rows[1:]} == {"done"}

    as_json = api_client.get(batch["export_url"], {"format": "json"})
    assert as_json.status_code == 200 and [item["file_name"] for item in as_json.json()] == ["=cmd.jpg", "b.png"]
    assert api_client.get(batch["export_url"], {"format": "xml"}).status_code == 400


def test_another_users_batch_is_not_found(batch, other_user):
    from rest_framework.test import APIClient

    from accounts.services import api_token_create

    mallory = APIClient()
    mallory.credentials(HTTP_AUTHORIZATION=f"Bearer {api_token_create(user=other_user, name='m')[1]}")

    for response in (
        mallory.get(batch["url"]),
        mallory.get(batch["export_url"]),
        mallory.delete(batch["url"]),
    ):
        assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"
    assert mallory.get(BATCHES_URL).json()["count"] == 0
    assert AnalysisBatch.objects.filter(public_id=batch["id"]).exists()


def test_deleting_a_batch_deletes_its_analyses_and_their_files(api_client, batch, run_inline, _media_in_tmp):
    stored = [path for path in _media_in_tmp.rglob("*") if path.is_file() and "models" not in path.parts]
    assert stored

    with run_inline():
        response = api_client.delete(batch["url"])

    assert response.status_code == 204
    assert not AnalysisBatch.objects.exists() and not Analysis.objects.exists()
    assert not [path for path in stored if path.exists()]
    assert api_client.get(batch["url"]).status_code == 404
