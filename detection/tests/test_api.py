"""The REST API: submitting and reading analyses with a personal token, owner scoping, images, models, throttling."""

import io
from datetime import timedelta

import pytest
import redis
from django.core.cache import cache
from django.db import connections
from django.urls import reverse
from django.utils import timezone
from PIL import Image
from rest_framework.test import APIClient

from accounts.models import ApiToken
from accounts.services import api_token_create, api_token_revoke
from conftest import png_bomb
from deepfake_site.tests.test_settings import manage
from detection import dispatch, services
from detection.models import Analysis, DetectorModel
from detection.tests.conftest import InlineExecutor

LIST_URL = "/api/v1/analyses/"


def tiny_png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (1, 1), (200, 30, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


def detail_url(analysis) -> str:
    return f"/api/v1/analyses/{analysis.public_id}/"


def stored_files(media) -> list[str]:
    return sorted(str(p.relative_to(media)) for p in media.rglob("*") if p.is_file() and "models" not in p.parts)


class IdleExecutor:
    """An in-process runner that never gets round to the work: analyses stay queued."""

    def submit(self, function, *args):
        pass


@pytest.fixture(autouse=True)
def _fresh_throttle_counts():
    cache.clear()


@pytest.fixture
def token(user) -> tuple[ApiToken, str]:
    return api_token_create(user=user, name="script")


@pytest.fixture
def api(token) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token[1]}")
    return client


@pytest.fixture
def other_api(other_user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_token_create(user=other_user, name='theirs')[1]}")
    return client


@pytest.fixture
def inline(monkeypatch):
    """Queued analyses run at once, inside the request that committed them (needs a transactional test)."""
    monkeypatch.setattr(dispatch, "executor", lambda thread: InlineExecutor())


@pytest.fixture
def idle(monkeypatch):
    monkeypatch.setattr(dispatch, "executor", lambda thread: IdleExecutor())


def analysis_of(user, upload, *, status=Analysis.Status.QUEUED, **image) -> Analysis:
    """An analysis made through the services, as an upload would, without running it."""
    analysis = services.analysis_create(user=user, file=upload(**image), source="web").analysis
    Analysis.objects.filter(pk=analysis.pk).update(status=status)
    analysis.refresh_from_db()
    return analysis


def assert_error(response, status: int, code: str, field=None) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/json"
    error = response.json()["error"]
    assert set(error) == {"code", "message", "field"}
    assert (error["code"], error["field"]) == (code, field)
    assert len(error["message"]) > 10  # a sentence for a person, not just the code again
    return error


# --- Submitting ---------------------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_an_upload_is_answered_202_with_the_queued_analysis_and_its_url(api, user, active_model, upload, idle):
    response = api.post(LIST_URL, {"file": upload("cat.png", fmt="PNG", width=300, height=200)})

    assert response.status_code == 202
    body = response.json()
    analysis = Analysis.objects.get()
    assert body["id"] == str(analysis.public_id) and body["status"] == "queued" and body["reused"] is False
    assert analysis.owner == user and analysis.source == "api"
    assert (body["file_name"], body["media_type"], body["width"], body["height"]) == ("cat.png", "image/png", 300, 200)
    assert body["url"] == f"http://testserver/api/v1/analyses/{analysis.public_id}/" == response["Location"]
    assert body["result"] is None and body["images"]["heatmap"] is None
    assert body["images"]["original"].endswith(f"/api/v1/analyses/{analysis.public_id}/images/original/")


@pytest.mark.django_db(transaction=True)
def test_wait_returns_201_with_the_result_when_the_analysis_finishes_in_time(api, active_model, upload, inline):
    response = api.post(f"{LIST_URL}?wait=10", {"file": upload(width=320, height=240, seed=3)})

    assert response.status_code == 201
    body = response.json()
    analysis = Analysis.objects.get()
    assert body["status"] == "done" and analysis.status == Analysis.Status.DONE
    result = body["result"]
    assert result["probability_fake"] == pytest.approx(analysis.probability_fake)
    assert result["label"] == analysis.label and result["verdict"] == analysis.verdict
    assert result["threshold"] == active_model.threshold and result["model_version"] == "test-detector 1"
    assert result["confidence"] == pytest.approx(analysis.confidence)
    assert body["timings"]["total_ms"] > 0
    assert all(body["images"][kind] for kind in ("original", "thumbnail", "heatmap", "overlay"))


@pytest.fixture
def runner_thread():
    """The embedded runner's thread; it lets go of its database connection after the test, so the test database
    can be dropped."""
    yield
    dispatch.executor("analysis").submit(connections.close_all).result(timeout=60)


@pytest.mark.django_db(transaction=True)
def test_wait_follows_the_in_process_runner_in_its_own_thread(api, active_model, upload, runner_thread):
    """No stand-in: the embedded runner works in a background thread while the request waits for it."""
    response = api.post(f"{LIST_URL}?wait=60", {"file": upload(seed=4)})

    assert response.status_code == 201, response.json()
    assert response.json()["status"] == "done"
    assert Analysis.objects.get().status == Analysis.Status.DONE


@pytest.mark.django_db(transaction=True)
def test_wait_that_runs_out_answers_202_and_the_analysis_stays_queued(api, active_model, upload, idle):
    response = api.post(LIST_URL + "?wait=1", {"file": upload()})

    assert response.status_code == 202
    assert response.json()["status"] == "queued"


@pytest.mark.django_db(transaction=True)
def test_wait_above_the_maximum_is_capped(api, active_model, upload, idle, settings):
    settings.API_MAX_WAIT_SECONDS = 0

    response = api.post(LIST_URL + "?wait=100000", {"file": upload()})

    assert response.status_code == 202


@pytest.mark.django_db(transaction=True)
def test_wait_may_also_be_sent_as_a_form_field(api, active_model, upload, inline):
    response = api.post(LIST_URL, {"file": upload(), "wait": "5"})

    assert response.status_code == 201 and response.json()["status"] == "done"


@pytest.mark.django_db(transaction=True)
def test_resubmitting_the_same_image_returns_the_earlier_result(api, active_model, upload, inline):
    first = api.post(LIST_URL + "?wait=10", {"file": upload("a.jpg", seed=9)}).json()

    again = api.post(LIST_URL, {"file": upload("copy-of-a.jpg", seed=9)})

    assert again.status_code == 201
    assert again.json()["id"] == first["id"] and again.json()["reused"] is True
    assert Analysis.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_keep_original_false_discards_the_upload_after_the_analysis(api, active_model, upload, inline):
    body = api.post(LIST_URL + "?wait=10", {"file": upload(), "keep_original": "false"}).json()

    assert body["keep_original"] is False and body["images"]["original"] is None
    assert body["images"]["overlay"] is not None
    assert not Analysis.objects.get().original


@pytest.mark.django_db(transaction=True)
def test_queue_down_answers_503_with_the_kept_analysis_which_the_sweeper_runs_later(
    api, active_model, upload, broker, _media_in_tmp
):
    broker("redis://127.0.0.1:9/0")  # nothing listens on port 9

    response = api.post(LIST_URL, {"file": upload()})

    error = assert_error(response, 503, "queue_unavailable")
    assert "will run automatically" in error["message"]
    analysis = Analysis.objects.get()
    assert response.json()["analysis"]["id"] == str(analysis.public_id)
    assert response["Location"] == response.json()["analysis"]["url"]
    assert analysis.status == Analysis.Status.QUEUED and analysis.enqueued_at is None
    assert analysis.original and stored_files(_media_in_tmp) == [analysis.original.name]


# --- Reading, deleting, images ------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_owner_reads_an_analysis_and_others_get_404(api, other_api, user, active_model, upload):
    analysis = analysis_of(user, upload)

    mine = api.get(detail_url(analysis))
    theirs = other_api.get(detail_url(analysis))

    assert mine.status_code == 200 and mine.json()["id"] == str(analysis.public_id)
    assert_error(theirs, 404, "not_found")
    # Another user's ID reads exactly like one that does not exist.
    assert theirs.json() == other_api.get("/api/v1/analyses/00000000-0000-4000-8000-000000000000/").json()


@pytest.mark.django_db
def test_a_failed_analysis_says_why(api, user, active_model, upload):
    analysis = analysis_of(user, upload, status=Analysis.Status.FAILED)
    Analysis.objects.filter(pk=analysis.pk).update(error_message="The image could not be decoded: truncated")

    body = api.get(detail_url(analysis)).json()

    assert body["status"] == "failed" and body["result"] is None
    assert body["error_message"] == "The image could not be decoded: truncated"


@pytest.mark.django_db
def test_the_list_holds_only_the_users_analyses_newest_first_in_pages(api, user, other_user, active_model, upload):
    mine = [analysis_of(user, upload, seed=i) for i in range(3)]
    analysis_of(other_user, upload, seed=7)

    page = api.get(LIST_URL, {"page_size": 2}).json()
    rest = api.get(page["next"]).json()

    assert page["count"] == 3 and page["previous"] is None
    ids = [a["id"] for a in page["results"] + rest["results"]]
    assert ids == [str(a.public_id) for a in reversed(mine)]


@pytest.mark.django_db
def test_the_list_filters_by_label_verdict_status_and_day_and_orders(api, user, active_model, upload):
    real, fake, queued = (analysis_of(user, upload, seed=i) for i in range(3))
    done = {"status": Analysis.Status.DONE, "threshold": 0.5}
    Analysis.objects.filter(pk=real.pk).update(**done, label="real", probability_fake=0.1)
    Analysis.objects.filter(pk=fake.pk).update(**done, label="fake", probability_fake=0.95)
    Analysis.objects.filter(pk=queued.pk).update(created_at=timezone.now() - timedelta(days=3))

    def ids(**params) -> list[str]:
        response = api.get(LIST_URL, params)
        assert response.status_code == 200, response.json()
        return [a["id"] for a in response.json()["results"]]

    assert ids(label="fake") == [str(fake.public_id)]
    assert ids(verdict="real") == [str(real.public_id)]
    assert ids(status="queued") == [str(queued.public_id)]
    today = timezone.localdate().isoformat()
    assert set(ids(created_from=today)) == {str(real.public_id), str(fake.public_id)}
    assert ids(created_to=(timezone.localdate() - timedelta(days=1)).isoformat()) == [str(queued.public_id)]
    assert ids(ordering="most_fake")[:2] == [str(fake.public_id), str(real.public_id)]
    assert ids(ordering="oldest")[0] == str(queued.public_id)
    assert len(ids(status="")) == 3  # an empty filter is no filter


@pytest.mark.django_db(transaction=True)
def test_images_are_served_to_their_owner_only(api, other_api, active_model, upload, inline):
    body = api.post(LIST_URL + "?wait=10", {"file": upload(width=300, height=200)}).json()

    for kind, (fmt, media_type) in {
        "original": ("JPEG", "image/jpeg"),
        "thumbnail": ("WEBP", "image/webp"),
        "heatmap": ("PNG", "image/png"),
        "overlay": ("WEBP", "image/webp"),
    }.items():
        response = api.get(body["images"][kind])
        assert response.status_code == 200 and response["Content-Type"] == media_type
        assert Image.open(io.BytesIO(b"".join(response.streaming_content))).format == fmt
        assert "private" in response["Cache-Control"]
        assert_error(other_api.get(body["images"][kind]), 404, "not_found")
        assert_error(APIClient().get(body["images"][kind]), 401, "not_authenticated")


@pytest.mark.django_db
def test_a_picture_not_made_yet_is_404_with_a_reason(api, user, active_model, upload):
    analysis = analysis_of(user, upload)

    error = assert_error(api.get(f"{detail_url(analysis)}images/heatmap/"), 404, "not_found")
    assert "no heatmap picture yet" in error["message"]
    assert_error(api.get(f"{detail_url(analysis)}images/secrets/"), 404, "not_found")


@pytest.mark.django_db(transaction=True)
def test_delete_removes_the_analysis_and_its_files_for_the_owner_only(
    api, other_api, active_model, upload, inline, _media_in_tmp
):
    body = api.post(LIST_URL + "?wait=10", {"file": upload()}).json()
    url = body["url"]
    assert len(stored_files(_media_in_tmp)) == 4

    assert_error(other_api.delete(url), 404, "not_found")
    assert Analysis.objects.count() == 1

    assert api.delete(url).status_code == 204
    assert not Analysis.objects.exists() and stored_files(_media_in_tmp) == []
    assert_error(api.get(url), 404, "not_found")


# --- Models -------------------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_models_show_name_version_architecture_threshold_and_metrics(api, active_model):
    DetectorModel.objects.filter(pk=active_model.pk).update(metrics={"accuracy": 0.91, "roc_auc": 0.97})
    DetectorModel.objects.create(name="broken", version="0", architecture="resnet18", status="failed")

    active = api.get("/api/v1/models/active/")
    listing = api.get("/api/v1/models/")

    assert active.status_code == 200
    assert {k: active.json()[k] for k in ("name", "version", "architecture", "threshold", "metrics", "is_active")} == {
        "name": "test-detector",
        "version": "1",
        "architecture": "resnet18",
        "threshold": 0.5,
        "metrics": {"accuracy": 0.91, "roc_auc": 0.97},
        "is_active": True,
    }
    # Models that failed validation are an administrator's business, not the API's.
    assert [m["name"] for m in listing.json()["results"]] == ["test-detector"]


@pytest.mark.django_db
def test_no_active_model_is_a_404_with_its_own_code(api):
    assert_error(api.get("/api/v1/models/active/"), 404, "no_active_model")


# --- Authentication -----------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_token_request_records_when_the_token_was_last_used(api, token):
    assert token[0].last_used_at is None

    assert api.get(LIST_URL).status_code == 200

    token[0].refresh_from_db()
    assert timezone.now() - token[0].last_used_at < timedelta(minutes=1)


@pytest.mark.django_db
def test_the_browser_session_works_and_its_writes_need_the_csrf_token(user, active_model, upload):
    analysis = analysis_of(user, upload)
    browser = APIClient(enforce_csrf_checks=True)
    browser.force_login(user)

    assert browser.get(detail_url(analysis)).status_code == 200
    assert_error(browser.delete(detail_url(analysis)), 403, "permission_denied")
    assert Analysis.objects.filter(pk=analysis.pk).exists()


# --- Bad input: one test each -------------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer", "Bearer dfd_not-a-real-token", "Bearer two words", "Token abc", "Basic YWxpY2U6cHc="],
)
def test_no_or_malformed_or_unknown_token_is_401(authorization, active_model):
    client = APIClient()
    if authorization:
        client.credentials(HTTP_AUTHORIZATION=authorization)

    response = client.get(LIST_URL)

    assert response.status_code == 401
    assert response.json()["error"]["code"] in {"not_authenticated", "invalid_token"}
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'


@pytest.mark.django_db
def test_a_revoked_token_is_401(api, user, token):
    api_token_revoke(user=user, token_id=token[0].pk)

    error = assert_error(api.get(LIST_URL), 401, "invalid_token")
    assert "revoked" in error["message"]


@pytest.mark.django_db
def test_a_token_of_a_deactivated_user_is_401(api, user):
    user.is_active = False
    user.save()

    assert_error(api.get(LIST_URL), 401, "invalid_token")


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("make_file", "code"),
    [
        (None, "missing_file"),
        (lambda upload: upload("empty.jpg", data=b""), "empty_file"),
        (lambda upload: upload("half.jpg", data=upload(width=400, height=300).read()[:5000]), "corrupt_image"),
        (lambda upload: upload("bomb.png", data=png_bomb()), "image_too_large"),
        (lambda upload: upload("dot.png", data=tiny_png()), "image_too_small"),
    ],
)
def test_missing_empty_corrupt_or_unjudgeable_file_is_400_and_keeps_nothing(
    api, active_model, upload, make_file, code, _media_in_tmp
):
    data = {"file": make_file(upload)} if make_file else {"note": "no file here"}

    assert_error(api.post(LIST_URL, data), 400, code, "file")
    assert not Analysis.objects.exists() and stored_files(_media_in_tmp) == []


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("query", "data", "field"),
    [
        ("?wait=soon", {}, "wait"),
        ("?wait=-1", {}, "wait"),
        ("?wait=1.5", {}, "wait"),
        ("", {"wait": "later"}, "wait"),
        ("", {"keep_original": "perhaps"}, "keep_original"),
    ],
)
def test_bad_upload_parameters_are_400_before_anything_is_stored(
    api, active_model, upload, query, data, field, _media_in_tmp
):
    assert_error(api.post(LIST_URL + query, {"file": upload(), **data}), 400, "invalid_parameter", field)
    assert not Analysis.objects.exists() and stored_files(_media_in_tmp) == []


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"status": "finished"}, "status"),
        ({"label": "maybe"}, "label"),
        ({"verdict": "sure"}, "verdict"),
        ({"created_from": "yesterday"}, "created_from"),
        ({"created_from": "2026-02-01", "created_to": "2026-01-01"}, "created_to"),
        ({"ordering": "random"}, "ordering"),
        ({"page": "two"}, "page"),
        ({"page": "0"}, "page"),
        ({"page_size": "0"}, "page_size"),
        ({"page_size": "1000"}, "page_size"),
    ],
)
def test_bad_list_filters_are_400_naming_the_parameter(api, params, field):
    assert_error(api.get(LIST_URL, params), 400, "invalid_parameter", field)


@pytest.mark.django_db
def test_a_page_past_the_end_is_404(api):
    assert_error(api.get(LIST_URL, {"page": 5}), 404, "not_found")


@pytest.mark.django_db
def test_a_body_that_is_not_multipart_is_415_and_a_broken_multipart_is_400(api, active_model):
    as_json = api.post(LIST_URL, {"file": "aGVsbG8="}, format="json")
    broken = api.generic("POST", LIST_URL, b"--nope\r\n\r\n", content_type="multipart/form-data; boundary=")

    error = assert_error(as_json, 415, "unsupported_content_type")
    assert "application/json" in error["message"] and "multipart/form-data" in error["message"]
    assert_error(broken, 400, "parse_error")


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("method", "url"),
    [("put", "detail"), ("patch", "detail"), ("post", "detail"), ("delete", LIST_URL), ("put", LIST_URL)],
)
def test_a_method_an_endpoint_does_not_have_is_405(api, user, active_model, upload, method, url):
    url = detail_url(analysis_of(user, upload)) if url == "detail" else url

    response = getattr(api, method)(url)

    assert_error(response, 405, "method_not_allowed")
    assert "GET" in response["Allow"]


@pytest.mark.django_db
def test_an_unknown_address_under_the_api_is_a_json_404(api):
    assert_error(api.get("/api/v1/nothing-here/"), 404, "not_found")
    assert_error(api.get("/api/v2/analyses/"), 404, "not_found")
    assert_error(api.get("/api/v1/analyses/not-a-uuid/"), 404, "not_found")


class UnreadableBody(io.RawIOBase):
    """A request body that records any attempt to read it."""

    def __init__(self):
        self.reads = 0

    def read(self, *args):
        self.reads += 1
        return b""

    readline = read


@pytest.mark.django_db
def test_a_declared_size_over_the_limit_is_413_before_the_body_is_read(api, active_model, _media_in_tmp, settings):
    body = UnreadableBody()

    response = api.generic(
        "POST",
        LIST_URL,
        b"x",
        content_type="multipart/form-data; boundary=xyz",
        CONTENT_LENGTH=str(settings.MAX_FILE_SIZE * 50),
        **{"wsgi.input": body},
    )

    error = assert_error(response, 413, "file_too_large", "file")
    assert f"{settings.MAX_FILE_SIZE_MB} MB" in error["message"]
    assert body.reads == 0
    assert not Analysis.objects.exists() and stored_files(_media_in_tmp) == []


@pytest.mark.django_db
def test_a_file_over_the_limit_inside_a_normal_request_is_413(api, active_model, upload, settings, _media_in_tmp):
    big = upload("big.png", fmt="PNG", width=400, height=300)
    # Just over the limit: small enough to pass the declared-size check, so the file check must catch it.
    settings.MAX_FILE_SIZE = big.size - 1

    assert_error(api.post(LIST_URL, {"file": big}), 413, "file_too_large", "file")
    assert stored_files(_media_in_tmp) == []


@pytest.mark.django_db
@pytest.mark.parametrize("fmt", ["GIF", "BMP", "text"])
def test_a_file_that_is_not_a_supported_image_is_415(api, active_model, upload, make_image_bytes, fmt, _media_in_tmp):
    if fmt == "text":
        data = b"just some words, not an image"
    else:
        buffer = io.BytesIO()
        Image.open(io.BytesIO(make_image_bytes())).save(buffer, format=fmt)
        data = buffer.getvalue()

    error = assert_error(
        api.post(LIST_URL, {"file": upload("pic.jpg", data=data)}), 415, "unsupported_media_type", "file"
    )
    assert "JPEG, PNG or WebP" in error["message"]
    assert stored_files(_media_in_tmp) == []


@pytest.mark.django_db
def test_too_many_requests_is_429_with_retry_after_per_token(api, other_api, settings):
    settings.API_THROTTLE_RATE = "2/minute"

    assert api.get(LIST_URL).status_code == 200
    assert api.get(LIST_URL).status_code == 200
    response = api.get(LIST_URL)

    assert_error(response, 429, "throttled")
    assert 1 <= int(response["Retry-After"]) <= 60
    assert f"{response['Retry-After']} second" in response.json()["error"]["message"]
    # Someone else's token has its own allowance.
    assert other_api.get(LIST_URL).status_code == 200


@pytest.mark.django_db
def test_uploads_have_their_own_limit(api, active_model, settings):
    settings.UPLOAD_THROTTLE_RATE = "1/hour"

    assert api.post(LIST_URL, {}).status_code == 400  # counted, even though it was refused
    response = api.post(LIST_URL, {})

    assert_error(response, 429, "throttled")
    assert int(response["Retry-After"]) > 60
    assert api.get(LIST_URL).status_code == 200  # reading is not an upload


@pytest.mark.django_db(transaction=True)
def test_the_upload_limit_counts_per_user_across_tokens_and_the_web_pages(
    api, user, active_model, upload, settings, client, idle
):
    settings.UPLOAD_THROTTLE_RATE = "2/hour"
    second_token = APIClient()
    second_token.credentials(HTTP_AUTHORIZATION=f"Bearer {api_token_create(user=user, name='second')[1]}")
    client.force_login(user)

    assert api.post(LIST_URL, {"file": upload(seed=1)}).status_code == 202
    assert client.post(reverse("detection:upload"), {"files": [upload("web.jpg", seed=2)]}).status_code == 201
    assert_error(second_token.post(LIST_URL, {"file": upload(seed=3)}), 429, "throttled")
    refused = client.post(reverse("detection:upload"), {"files": [upload("more.jpg", seed=4)]})

    assert refused.status_code == 429 and "Too many uploads" in refused.content.decode()
    assert Analysis.objects.count() == 2


@pytest.mark.django_db
def test_no_active_model_makes_uploads_503(api, upload, _media_in_tmp):
    error = assert_error(api.post(LIST_URL, {"file": upload()}), 503, "no_active_model")
    assert "try again later" in error["message"]
    assert stored_files(_media_in_tmp) == []


# --- Configuration ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("API_THROTTLE_RATE", "fast", "API_THROTTLE_RATE='fast' is not a rate like 120/minute"),
        ("UPLOAD_THROTTLE_RATE", "10/fortnight", "UPLOAD_THROTTLE_RATE='10/fortnight' is not a rate"),
        ("API_MAX_WAIT_SECONDS", "-1", "API_MAX_WAIT_SECONDS=-1 is below the minimum of 0"),
        ("CACHE_URL", "memcached://cache:11211", "CACHE_URL='memcached://cache:11211' is not a Redis URL"),
    ],
)
def test_bad_api_settings_stop_the_process_with_the_variable_named(name, value, message):
    result = manage("check", env={name: value})

    assert result.returncode != 0
    assert message in result.stderr


@pytest.mark.redis
@pytest.mark.django_db
def test_request_counts_live_in_the_shared_cache_when_one_is_configured(api, settings, redis_url):
    shared = redis_url.rsplit("/", 1)[0] + "/2"  # this helper's own Redis database
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": shared}}
    settings.API_THROTTLE_RATE = "1/minute"
    cache.clear()

    assert api.get(LIST_URL).status_code == 200
    # The count lives in Redis, where every web process reads it.
    assert any(key.startswith(b":1:throttle_api_user-") for key in redis.Redis.from_url(shared).scan_iter())
    assert_error(api.get(LIST_URL), 429, "throttled")
    cache.clear()


@pytest.mark.django_db
def test_requests_are_served_when_the_cache_holding_the_counts_is_down(api, settings):
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": "redis://127.0.0.1:9/0"}
    }
    settings.API_THROTTLE_RATE = "1/minute"

    assert [api.get(LIST_URL).status_code for _ in range(3)] == [200, 200, 200]


@pytest.mark.django_db
def test_every_endpoint_answers_options_with_its_methods(api, user, active_model, upload, run_inline):
    from detection.api.urls import urlpatterns

    with run_inline():
        analysis = services.analysis_create(user=user, file=upload(), source="api").analysis
    values = {"public_id": analysis.public_id, "kind": "overlay", "number": 1}
    routes = [pattern for pattern in urlpatterns if pattern.name]  # the last, nameless pattern is the API's 404
    assert len(routes) == 11  # with the flag and the three batch routes (list, detail, export)

    for pattern in routes:
        url = reverse(f"api:{pattern.name}", kwargs={k: values[k] for k in pattern.pattern.converters})
        response = api.options(url)

        assert response.status_code == 200, (url, response.content)
        body = response.json()
        assert body["schema"] == "/api/schema/" and body["renders"] == ["application/json"]
        allowed = {method.strip() for method in response["Allow"].split(",")}
        assert {"GET", "OPTIONS"} <= allowed, url
    assert APIClient().options(reverse("api:analysis-list")).status_code == 401
