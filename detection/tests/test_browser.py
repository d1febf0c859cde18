"""In Debian's Chromium: sign up, upload a real JPEG, watch the result arrive with its heatmap, find it in the
history, export it as JSON and delete it. Screenshots of every page at 1280 and 375 px in both themes are kept in
TEST_ARTIFACTS_DIR (default: test-artifacts/ in the checkout, ignored by git).

The test fails on any console error and on any request to a host other than 127.0.0.1.
"""

import json
import os
from pathlib import Path
from urllib.parse import urlparse

import pytest
from django.db import connections
from pytest_django.live_server_helper import LiveServer

from conftest import IS_CI
from detection.models import Analysis

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
WIDTHS = (1280, 375)
THEMES = ("light", "dark")
RESULT_TIMEOUT_MS = 120_000  # the first analysis loads the model in the web process


@pytest.fixture(scope="module")
def live_server(request):
    """The site on 127.0.0.1 itself (pytest-django's default is "localhost"), so every request can be checked."""
    server = LiveServer("127.0.0.1")
    yield server
    server.stop()


@pytest.fixture
def artifacts() -> Path:
    folder = Path(os.environ.get("TEST_ARTIFACTS_DIR") or ROOT / "test-artifacts") / "browser"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


class Guard:
    """Collects console errors, uncaught page errors and requests that leave 127.0.0.1 (those are also blocked)."""

    def __init__(self, context):
        self.errors: list[str] = []
        self.outside: list[str] = []
        context.on("request", self.check_request)
        context.route("**/*", self.route)

    def watch(self, page) -> None:
        page.on("console", lambda message: message.type == "error" and self.errors.append(message.text))
        page.on("pageerror", lambda error: self.errors.append(f"uncaught: {error}"))
        # Every Content-Security-Policy violation, reported by the page itself (not all reach the console).
        page.expose_function("reportViolation", lambda text: self.errors.append(f"CSP: {text}"))
        page.add_init_script(
            """document.addEventListener("securitypolicyviolation", event =>
                window.reportViolation(`${event.violatedDirective} blocked ${event.blockedURI}`));"""
        )

    @staticmethod
    def leaves(url: str) -> bool:
        parsed = urlparse(url)
        return parsed.scheme in {"http", "https", "ws", "wss"} and parsed.hostname != "127.0.0.1"

    def check_request(self, request) -> None:
        if self.leaves(request.url):
            self.outside.append(request.url)

    def route(self, route) -> None:
        if self.leaves(route.request.url):
            route.abort()
        else:
            route.continue_()


@pytest.fixture
def browser_context(chromium_path, monkeypatch):
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        if IS_CI:
            raise
        pytest.skip("[browser] Playwright for Python is not installed (pip install -r requirements-dev.txt)")
    # Playwright's synchronous API runs an event loop in this thread; the ORM calls of the test itself are still
    # plain blocking calls made between browser steps.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
        context.set_default_timeout(30_000)
        guard = Guard(context)
        yield context, guard
        context.close()
        browser.close()
        # While that loop runs, Django keeps this thread's connections apart from the ones it keeps outside it (asgiref
        # sees an async thread): the test's own connection must be closed here, or it stays open and the test
        # database cannot be dropped at the end of the run.
        connections.close_all()


def screenshots(page, artifacts: Path, name: str) -> None:
    """The page at each width in each theme; at 375 px nothing may stick out sideways."""
    page.evaluate("document.activeElement && document.activeElement.blur()")
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 900})
        for theme in THEMES:
            page.emulate_media(color_scheme=theme)
            page.wait_for_function("theme => document.documentElement.dataset.theme === theme", arg=theme)
            page.screenshot(path=artifacts / f"{name}-{width}-{theme}.png", full_page=True, animations="disabled")
        overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
        assert overflow <= 0, f"{name} is {overflow} px wider than a {width} px screen"
    page.set_viewport_size({"width": 1280, "height": 900})
    page.emulate_media(color_scheme="light")


def test_sign_up_upload_see_result_find_export_delete(
    live_server, browser_context, active_model, artifacts, make_image_bytes
):
    context, guard = browser_context
    active_model.metrics = {
        "validation": {"accuracy": 0.912, "f1": 0.905, "roc_auc": 0.963, "average_precision": 0.958, "count": 400},
        "test": {"accuracy": 0.884, "f1": 0.871, "roc_auc": 0.941, "average_precision": 0.936, "count": 380},
    }
    active_model.save()
    page = context.new_page()
    guard.watch(page)
    base = live_server.url
    assert urlparse(base).hostname == "127.0.0.1"

    # Sign up.
    page.goto(base + "/accounts/signup/")
    page.get_by_label("Username").fill("browser-user")
    page.get_by_label("Email").fill("browser-user@example.com")
    page.locator("#id_password1").fill("a-long-unusual-passphrase-81")
    page.locator("#id_password2").fill("a-long-unusual-passphrase-81")
    page.get_by_role("button", name="Sign up").click()
    page.get_by_text("Welcome, browser-user!").wait_for()

    # Upload a real JPEG together with two files the page refuses itself (the server's refusals, which the browser
    # logs as failed requests, are covered by test_pages_upload): each file gets its own outcome.
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Analyse").click()
    page.wait_for_load_state()  # the page's scripts (deferred) are listening from here on
    page.set_input_files(
        "#id_files",
        [
            {"name": "holiday.jpg", "mimeType": "image/jpeg", "buffer": make_image_bytes(640, 480, seed=5)},
            {"name": "notes.txt", "mimeType": "text/plain", "buffer": b"not a picture"},
            {"name": "empty.jpg", "mimeType": "image/jpeg", "buffer": b""},
        ],
    )
    items = page.locator("#upload-list > li")
    good = items.filter(has_text="holiday.jpg")
    good.get_by_role("link", name="View result").wait_for(timeout=RESULT_TIMEOUT_MS)
    notes = items.filter(has_text="notes.txt").get_by_role("alert")
    assert notes.inner_text() == "“notes.txt” is neither an image (JPEG, PNG or WebP) nor a video (MP4, MOV or WebM)."
    assert items.filter(has_text="empty.jpg").get_by_role("alert").inner_text() == "“empty.jpg” is empty (0 bytes)."
    assert good.locator(".badge").inner_text() in {"Real", "Fake", "Uncertain"}
    analysis = Analysis.objects.get(owner__username="browser-user")
    assert analysis.status == Analysis.Status.DONE and analysis.source == Analysis.Source.WEB
    screenshots(page, artifacts, "upload")

    # The result page: verdict, meter, chart, original and overlay with a working opacity slider.
    good.get_by_role("link", name="View result").click()
    page.wait_for_load_state()
    verdict = page.locator("p.verdict")
    assert verdict.inner_text() == {"real": "Real", "fake": "Fake", "uncertain": "Uncertain"}[analysis.verdict]
    assert page.get_by_role("meter", name="Confidence").get_attribute("aria-valuenow") == str(
        round(analysis.confidence * 100)
    )
    assert page.get_by_role("img", name="Class probabilities").is_visible()
    overlay = page.locator("#overlay-layer")
    overlay.scroll_into_view_if_needed()
    page.wait_for_function("() => [...document.images].every(image => image.complete && image.naturalWidth > 0)")
    page.get_by_label("Heatmap strength").fill("30")
    assert overlay.evaluate("layer => getComputedStyle(layer).opacity") == "0.3"
    assert page.locator("output[for=overlay-opacity]").inner_text() == "30 %"
    page.get_by_label("Heatmap strength").fill("100")
    screenshots(page, artifacts, "result")

    # Find it in the history by its name (htmx replaces the results as one types).
    page.get_by_role("navigation", name="Main").get_by_role("link", name="History").click()
    page.wait_for_load_state()
    page.get_by_label("File name").fill("holi")
    page.wait_for_url("**/analyses/?q=holi*")
    rows = page.locator(".history-table tbody tr")
    rows.first.wait_for()
    assert rows.count() == 1 and "holiday.jpg" in rows.first.inner_text()
    page.get_by_label("File name").fill("no such picture")
    page.get_by_text("No analyses match these filters").wait_for()
    page.get_by_label("File name").fill("holiday")
    rows.first.wait_for()
    screenshots(page, artifacts, "history")

    # Export it as JSON from its result page.
    rows.first.get_by_role("link", name="holiday.jpg").click()
    with page.expect_download() as download_info:
        page.get_by_role("link", name="Download JSON").click()
    download = download_info.value
    assert download.suggested_filename == f"analysis-{analysis.public_id}.json"
    exported = json.loads(Path(download.path()).read_text())
    assert exported["id"] == str(analysis.public_id) and exported["result"]["verdict"] == analysis.verdict
    assert exported["model"]["version"] == "test-detector 1"

    # Delete it, after confirming.
    page.get_by_role("link", name="Delete…").click()
    page.get_by_role("heading", name="Delete this analysis?").wait_for()
    screenshots(page, artifacts, "delete")
    page.get_by_role("button", name="Delete it").click()
    page.get_by_text("The analysis of “holiday.jpg” and its pictures are deleted.").wait_for()
    page.get_by_text("No analyses yet").wait_for()
    screenshots(page, artifacts, "history-empty")
    assert not Analysis.objects.exists()

    # The theme toggle flips the theme and remembers it.
    page.get_by_role("button", name="Switch to dark theme").click()
    assert page.evaluate("document.documentElement.dataset.theme") == "dark"
    page.reload()
    assert page.evaluate("document.documentElement.dataset.theme") == "dark"

    assert guard.errors == [], f"console errors: {guard.errors}"
    assert guard.outside == [], f"requests that left 127.0.0.1: {guard.outside}"


def signed_in_page(browser_context, live_server, user, password):
    """A new page, watched by the guard, signed in as `user` through the sign-in form."""
    context, guard = browser_context
    page = context.new_page()
    guard.watch(page)
    page.goto(live_server.url + "/accounts/login/")
    page.locator("#id_username").fill(user.username)
    page.locator("#id_password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    return page, guard


def test_drop_paste_and_keyboard(live_server, browser_context, active_model, user, password, make_image_bytes):
    page, guard = signed_in_page(browser_context, live_server, user, password)
    page.goto(live_server.url + "/analyses/new/")  # returns once the page has loaded, scripts included

    # The file picker is reachable with the keyboard, and its button shows where the focus is.
    for _ in range(20):
        if page.evaluate("document.activeElement.id") == "id_files":
            break
        page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "id_files"
    outline = page.locator("label[for=id_files]").evaluate("label => getComputedStyle(label).outlineStyle")
    assert outline == "solid"

    # A PNG dropped on the zone and a WebP pasted anywhere on the page are analysed like picked files.
    dropped = list(make_image_bytes(300, 200, fmt="PNG", seed=11))
    pasted = list(make_image_bytes(260, 180, fmt="WEBP", seed=12))
    page.evaluate(
        """([dropped, pasted]) => {
            const transfer = (bytes, name, type) => {
                const data = new DataTransfer();
                data.items.add(new File([new Uint8Array(bytes)], name, { type }));
                return data;
            };
            const zone = document.getElementById("dropzone");
            const drop = transfer(dropped, "dropped.png", "image/png");
            zone.dispatchEvent(new DragEvent("dragover", { dataTransfer: drop, bubbles: true, cancelable: true }));
            zone.dispatchEvent(new DragEvent("drop", { dataTransfer: drop, bubbles: true, cancelable: true }));
            const paste = transfer(pasted, "image.webp", "image/webp");
            const options = { clipboardData: paste, bubbles: true, cancelable: true };
            document.dispatchEvent(new ClipboardEvent("paste", options));
        }""",
        [dropped, pasted],
    )
    items = page.locator("#upload-list > li")
    for name in ("dropped.png", "pasted-image-1.webp"):
        items.filter(has_text=name).get_by_role("link", name="View result").wait_for(timeout=RESULT_TIMEOUT_MS)
    analyses = Analysis.objects.filter(owner=user).order_by("original_name")
    assert [(a.original_name, a.media_type, a.status) for a in analyses] == [
        ("dropped.png", "image/png", "done"),
        ("pasted-image-1.webp", "image/webp", "done"),
    ]

    assert guard.errors == [], f"console errors: {guard.errors}"
    assert guard.outside == [], f"requests that left 127.0.0.1: {guard.outside}"


def test_a_photos_faces_are_boxed_over_it_and_each_opens_as_the_model_saw_it(
    live_server, browser_context, active_face_model, user, password, artifacts, upload
):
    from conftest import jpeg_bytes, photo_with_faces
    from detection import services
    from detection.tests.conftest import wait_for

    photo = jpeg_bytes(photo_with_faces([(80, 120, 240), (620, 260, 150)]))
    analysis = services.analysis_create(user=user, file=upload("two-faces.jpg", data=photo), source="web").analysis
    wait_for(
        lambda: Analysis.objects.filter(pk=analysis.pk, status=Analysis.Status.DONE).exists(),
        timeout=RESULT_TIMEOUT_MS / 1000,
        what="the analysis (run by the in-process runner)",
    )
    faces = list(Analysis.objects.get(pk=analysis.pk).faces.all())
    assert len(faces) == 2
    page, guard = signed_in_page(browser_context, live_server, user, password)
    page.goto(live_server.url + analysis.get_absolute_url())
    page.wait_for_function("() => [...document.images].every(image => image.complete && image.naturalWidth > 0)")

    # Each box sits over its face: the same place, in the shown image's scale, as in the photo's pixels.
    shown = page.get_by_role("img", name="The uploaded image").bounding_box()
    scale = shown["width"] / 1000
    for face in faces:
        box = page.locator(f"[data-face-box='{face.number}']").bounding_box()
        assert abs(box["x"] - (shown["x"] + face.left * scale)) < 3
        assert abs(box["y"] - (shown["y"] + face.top * scale)) < 3
        assert abs(box["width"] - face.width * scale) < 3
    # Choosing a box goes to that face, shown as the model saw it.
    page.locator("[data-face-box='2']").click()
    page.wait_for_url("**#face-2")
    card = page.locator("#face-2")
    assert card.evaluate("card => getComputedStyle(card).outlineStyle") == "solid"
    assert card.get_by_role("img").evaluate("image => image.naturalWidth") > 0
    screenshots(page, artifacts, "result-faces")

    assert guard.errors == [], f"console errors: {guard.errors}"
    assert guard.outside == [], f"requests that left 127.0.0.1: {guard.outside}"


def test_a_video_uploaded_on_the_page_shows_a_timeline_whose_points_open_their_frames(
    live_server, browser_context, active_face_model, user, password, artifacts, tmp_path
):
    from detection.tests.test_videos import FPS, clip_frames
    from ml.video import video_write

    clip = tmp_path / "clip.mp4"
    video_write(clip, clip_frames(4), fps=FPS)
    page, guard = signed_in_page(browser_context, live_server, user, password)
    page.goto(live_server.url + "/analyses/new/")
    page.locator("#id_files").set_input_files(str(clip))
    page.locator("#upload-list > li").get_by_role("link", name="View result").click(timeout=RESULT_TIMEOUT_MS)

    points = page.locator("[data-frame-point]")
    points.first.wait_for(timeout=RESULT_TIMEOUT_MS)
    assert points.count() == 4 and page.locator("[data-track='1']").count() == 1
    page.wait_for_function("() => [...document.images].every(image => image.complete && image.naturalWidth > 0)")
    # Choosing a point of the timeline shows that frame (htmx swaps it in, the page stays).
    page.locator("[data-frame-point='2']").click()
    page.locator(".frame-view[data-frame='2']").wait_for()
    assert page.locator(".frame-view img").evaluate("image => image.complete && image.naturalWidth > 0")
    assert page.locator("[data-finding]").count() >= 1
    screenshots(page, artifacts, "result-video")

    assert guard.errors == [], f"console errors: {guard.errors}"
    assert guard.outside == [], f"requests that left 127.0.0.1: {guard.outside}"


def test_the_api_docs_and_admin_pages_render_within_the_content_security_policy(
    live_server, browser_context, django_user_model
):
    django_user_model.objects.create_superuser("root", "root@example.com", "admin-passphrase-77")
    context, guard = browser_context
    page = context.new_page()
    guard.watch(page)

    page.goto(live_server.url + "/api/docs/")
    page.locator(".swagger-ui .opblock").first.wait_for(timeout=30_000)  # Swagger UI ran and read the schema
    page.goto(live_server.url + "/api/redoc/")
    page.get_by_role("heading", name="Submit an image").wait_for(timeout=30_000)  # Redoc rendered the operations
    page.goto(live_server.url + "/admin/login/")
    page.locator("#id_username").fill("root")
    page.locator("#id_password").fill("admin-passphrase-77")
    page.get_by_role("button", name="Log in").click()
    page.goto(live_server.url + "/admin/detection/detectormodel/add/")
    page.locator("#id_name").wait_for()

    assert guard.errors == [], f"console errors or CSP violations: {guard.errors}"
    assert guard.outside == [], f"requests that left 127.0.0.1: {guard.outside}"
