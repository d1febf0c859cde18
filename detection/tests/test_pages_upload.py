"""The upload page: every file of a drop is its own analysis, and a refused file says why next to its name."""

import re

import pytest
from django.core.files.storage import default_storage
from django.urls import reverse

from conftest import png_bomb
from detection.models import Analysis

UPLOAD_URL = reverse("detection:upload")
HTMX = {"HTTP_HX_REQUEST": "true"}


def upload_items(html: str) -> dict[str, str]:
    """Each listed file's name → the HTML of its list item."""
    items = {}
    for chunk in html.split('<li class="upload-item')[1:]:
        chunk = chunk.split("</li>", 1)[0]
        name = re.search(r'<span class="upload-name">([^<]*)</span>', chunk).group(1)
        items[name] = chunk
    return items


def test_pages_need_a_signed_in_user(client):
    response = client.get(UPLOAD_URL)

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("accounts:login"))


@pytest.mark.django_db
def test_the_browser_checks_mirror_the_server_limits(user_client, settings):
    settings.MAX_FILE_SIZE_MB = 3
    settings.MAX_FILE_SIZE = 3 * 1024 * 1024

    html = user_client.get(UPLOAD_URL).content.decode()

    assert 'data-max-bytes="3145728"' in html and 'data-max-mb="3"' in html
    assert 'data-accept-types="image/jpeg,image/png,image/webp"' in html
    assert 'accept="image/jpeg,image/png,image/webp,.jpeg,.jpg,.png,.webp,video/mp4,video/quicktime,video/webm,' in html
    assert "Images (JPEG, PNG or WebP) up to 3 MB each" in html
    assert 'name="files" multiple' in html
    assert "detection/upload.js" in html


@pytest.mark.django_db(transaction=True)
def test_every_file_of_a_drop_gets_its_own_outcome(
    user, client, active_model, run_inline, upload, make_image_bytes, settings
):
    settings.MAX_FILE_SIZE_MB = 1
    settings.MAX_FILE_SIZE = 1024 * 1024
    settings.MAX_VIDEO_SIZE_MB, settings.MAX_VIDEO_SIZE = 1, 1024 * 1024
    client.force_login(user)
    truncated = make_image_bytes(400, 300)
    files = [
        upload("first.jpg", seed=1),
        upload("notes.txt", data=b"shopping list: milk, eggs"),
        upload("empty.png", data=b""),
        upload("broken.jpg", data=truncated[: len(truncated) // 2]),
        upload("huge.png", data=b"\x89PNG" + b"0" * (1024 * 1024 + 10)),
        upload("bomb.png", data=png_bomb()),
        upload("second.png", fmt="PNG", seed=2),
    ]

    response = client.post(UPLOAD_URL, {"files": files, "keep_original": "on"})

    assert response.status_code == 201  # some went through
    items = upload_items(response.content.decode())
    assert list(items) == ["first.jpg", "notes.txt", "empty.png", "broken.jpg", "huge.png", "bomb.png", "second.png"]
    assert "is neither an image (JPEG, PNG or WebP) nor a video (MP4, MOV or WebM)" in items["notes.txt"]
    assert "“empty.png” is empty (0 bytes)." in items["empty.png"]
    assert "“broken.jpg” cannot be used: The image is damaged or truncated" in items["broken.jpg"]
    assert "“huge.png” is over 1 MB; images up to 1 MB and videos up to 1 MB are accepted." in items["huge.png"]
    assert "“bomb.png” has more pixels than can be analysed safely" in items["bomb.png"]
    for good in ("first.jpg", "second.png"):
        assert "field-error" not in items[good]
        analysis = Analysis.objects.get(original_name=good)
        assert analysis.source == Analysis.Source.WEB and analysis.status == Analysis.Status.DONE
        assert analysis.get_absolute_url() in items[good]
    assert Analysis.objects.count() == 2


@pytest.mark.django_db(transaction=True)
def test_the_script_sends_one_file_and_gets_its_list_item_back(user, client, active_model, monkeypatch, upload):
    # Nothing runs the analysis: the item must keep polling for its result.
    monkeypatch.setattr("detection.dispatch.send", lambda job, object_id: True)
    client.force_login(user)

    response = client.post(UPLOAD_URL, {"files": upload("cat.webp", fmt="WEBP")}, **HTMX)

    html = response.content.decode()
    analysis = Analysis.objects.get()
    assert response.status_code == 201
    assert html.lstrip().startswith('<li class="upload-item"') and "<html" not in html
    poll_url = reverse("detection:analysis_status", args=[analysis.public_id]) + "?compact=1"
    assert f'hx-get="{poll_url}"' in html
    assert 'hx-trigger="load delay:1s"' in html
    assert "Queued…" in html


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("name", "content", "status", "message"),
    [
        (
            "notes.txt",
            lambda make: b"not a picture",
            415,
            "“notes.txt” is neither an image (JPEG, PNG or WebP) nor a video",
        ),
        ("empty.jpg", lambda make: b"", 400, "“empty.jpg” is empty (0 bytes)."),
        ("cut.png", lambda make: make(fmt="PNG")[:600], 400, "“cut.png” cannot be used: The image is damaged"),
    ],
)
def test_a_refused_file_says_why_and_nothing_is_kept(
    user_client, active_model, upload, make_image_bytes, name, content, status, message, _media_in_tmp
):
    response = user_client.post(UPLOAD_URL, {"files": upload(name, data=content(make_image_bytes))}, **HTMX)

    html = response.content.decode()
    assert response.status_code == status
    assert 'class="upload-item upload-item-error"' in html
    assert message in html and 'role="alert"' in html
    assert not Analysis.objects.exists()
    assert [p for p in _media_in_tmp.rglob("*") if p.is_file() and "models" not in p.parts] == []


@pytest.mark.django_db
def test_a_too_large_file_is_refused_with_413(user_client, active_model, upload, settings):
    settings.MAX_FILE_SIZE_MB = 1
    settings.MAX_FILE_SIZE = 1024 * 1024
    settings.MAX_VIDEO_SIZE_MB, settings.MAX_VIDEO_SIZE = 1, 1024 * 1024

    response = user_client.post(UPLOAD_URL, {"files": upload("big.jpg", data=b"\xff\xd8" + b"1" * 2 * 1024 * 1024)})

    assert response.status_code == 413
    assert (
        "“big.jpg” is over 1 MB; images up to 1 MB and videos up to 1 MB are accepted."
        in upload_items(response.content.decode())["big.jpg"]
    )


@pytest.mark.django_db
def test_sending_no_file_asks_for_one(user_client, active_model):
    response = user_client.post(UPLOAD_URL, {})

    assert response.status_code == 400
    assert "Choose at least one file to analyse: an image (JPEG, PNG or WebP) or a video (MP4, MOV or WebM)." in (
        response.content.decode()
    )


@pytest.mark.django_db
def test_without_an_active_model_the_page_says_so(user_client, upload):
    response = user_client.post(UPLOAD_URL, {"files": upload()}, **HTMX)

    assert response.status_code == 503
    assert "No detector model is active yet" in response.content.decode()
    assert not Analysis.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_identical_content_is_answered_by_the_earlier_result(user, client, active_model, run_inline, upload):
    client.force_login(user)
    first = client.post(UPLOAD_URL, {"files": upload("a.jpg", seed=7)}, **HTMX)
    assert "data-reused" not in first.content.decode()

    again = client.post(UPLOAD_URL, {"files": upload("same-picture-new-name.jpg", seed=7)}, **HTMX)

    html = again.content.decode()
    analysis = Analysis.objects.get()
    assert again.status_code == 201
    assert "data-reused" in html and "this is that earlier result, not a new run" in html
    assert analysis.get_absolute_url() in html


@pytest.mark.django_db(transaction=True)
def test_when_the_broker_is_down_the_upload_is_kept_and_the_user_told(user, client, active_model, broker, upload):
    broker("redis://127.0.0.1:9/0")  # nothing listens on the discard port
    client.force_login(user)

    response = client.post(UPLOAD_URL, {"files": upload("later.jpg")}, **HTMX)

    html = response.content.decode()
    analysis = Analysis.objects.get()
    assert response.status_code == 201
    assert "data-waiting-for-queue" in html and "will be analysed automatically once the queue is back" in html
    assert 'hx-trigger="load delay:5s"' in html
    assert analysis.status == Analysis.Status.QUEUED and analysis.enqueued_at is None
    assert default_storage.exists(analysis.original.name)
    # The result page says the same, and polls slowly, since nothing changes until the queue is back.
    detail = client.get(analysis.get_absolute_url()).content.decode()
    assert "data-waiting-for-queue" in detail and 'hx-trigger="load delay:5s"' in detail


@pytest.mark.django_db(transaction=True)
def test_an_upload_may_ask_not_to_keep_the_original(user, client, active_model, run_inline, upload):
    client.force_login(user)

    client.post(UPLOAD_URL, {"files": upload("private.jpg")})

    analysis = Analysis.objects.get()
    assert not analysis.keep_original and not analysis.original
    detail = client.get(analysis.get_absolute_url()).content.decode()
    assert "Thumbnail (the original was not kept)" in detail
    assert reverse("detection:analysis_image", args=[analysis.public_id, "original"]) not in detail
