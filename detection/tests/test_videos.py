"""Videos: uploaded on the page and through the API, checked by content, analysed frame by frame on their own queue,
shown as a timeline; damaged, too long and too large ones refused with a clear error and nothing kept."""

import pytest
from celery.exceptions import SoftTimeLimitExceeded
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from PIL import Image

from conftest import astronaut_face, faceless_photo, picture
from detection import dispatch, services
from detection.models import Analysis, AnalysisFrame
from ml.video import video_write

pytestmark = pytest.mark.django_db

FPS = 10
FACE_FROM_S = 2  # the face appears two seconds in


def clip_frames(seconds: int = 4, *, face_from_s: float | None = FACE_FROM_S, size=(480, 320)):
    """A few seconds of a faceless photo, slowly panning, with the astronaut's face pasted in from face_from_s on."""
    background = faceless_photo(size[0] + 40, size[1])
    face = astronaut_face(140)
    for index in range(seconds * FPS):
        frame = background.crop((index % 40, 0, index % 40 + size[0], size[1]))
        if face_from_s is not None and index >= face_from_s * FPS:
            frame.paste(face, (170 + index % 5, 80))
        yield frame


@pytest.fixture
def make_video(tmp_path):
    """make_video("clip.mp4", seconds=4, face_from_s=2, codec="h264") → the file's bytes."""

    def make(name: str = "clip.mp4", *, seconds: int = 4, face_from_s=FACE_FROM_S, codec="h264", metadata=None):
        path = tmp_path / name
        video_write(path, clip_frames(seconds, face_from_s=face_from_s), fps=FPS, codec=codec, metadata=metadata)
        return path.read_bytes()

    return make


def video_upload(name: str, data: bytes) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, data, content_type="application/octet-stream")


def analyse_video(user, data: bytes, name: str = "clip.mp4") -> Analysis:
    submission = services.analysis_create(user=user, file=video_upload(name, data), source="web")
    services.analysis_run(analysis_id=submission.analysis.pk)
    return Analysis.objects.get(pk=submission.analysis.pk)


def test_a_video_is_analysed_frame_by_frame_with_faces_followed_and_a_recorded_rule(
    user, active_face_model, make_video
):
    analysis = analyse_video(user, make_video(metadata={"comment": "FaceSwapper 2.1"}))

    frames = list(analysis.frames.all())
    assert analysis.kind == Analysis.Kind.VIDEO and analysis.status == Analysis.Status.DONE
    assert analysis.media_type == "video/mp4" and (analysis.width, analysis.height) == (480, 320)
    assert analysis.duration_s == pytest.approx(4.0, abs=0.15) and analysis.frame_rate == pytest.approx(FPS)
    assert analysis.frames_planned == 4 and analysis.frames_done == 4 and analysis.progress == 100
    assert [frame.number for frame in frames] == [1, 2, 3, 4]
    assert [frame.timestamp_s for frame in frames] == pytest.approx([0, 1, 2, 3], abs=0.11)
    assert [frame.scope for frame in frames] == ["no_face", "no_face", "faces", "faces"]
    # The same face in two frames is one track, boxed where it was pasted (in the video's own pixels).
    assert [[face["track"] for face in frame.faces] for frame in frames[2:]] == [[1], [1]]
    box = frames[2].faces[0]
    assert 170 < box["left"] + box["width"] / 2 < 310 and 80 < box["top"] + box["height"] / 2 < 220
    # The documented rule: the mean of the top 20 % (at least 3) of the frames, recorded with the result.
    top = sorted((frame.probability_fake for frame in frames), reverse=True)[:3]
    assert analysis.probability_fake == pytest.approx(sum(top) / 3)
    assert analysis.verdict_rule["k"] == 3 and analysis.verdict_rule["frames"] == 4
    assert analysis.label == ("fake" if analysis.probability_fake >= analysis.threshold else "real")
    assert analysis.model_version == active_face_model.label
    # Pictures: each frame's, and the most suspicious frame's as the video's own.
    assert all(Image.open(frame.picture.open("rb")).format == "WEBP" for frame in frames)
    assert analysis.thumbnail and analysis.overlay and analysis.heatmap
    # Its metadata is read too: the container's tags.
    assert any("FaceSwapper" in finding["message"] for finding in analysis.provenance), analysis.provenance


def test_a_video_without_faces_is_judged_frame_by_frame_whole(user, active_face_model, make_video):
    analysis = analyse_video(user, make_video(seconds=3, face_from_s=None))

    assert analysis.status == Analysis.Status.DONE and analysis.frames_done == 3
    assert set(analysis.frames.values_list("scope", flat=True)) == {"no_face"}


def test_the_result_page_shows_the_timeline_and_a_chosen_frame(user, user_client, active_face_model, make_video):
    analysis = analyse_video(user, make_video())

    page = user_client.get(analysis.get_absolute_url()).content.decode()
    assert page.count("data-frame-point=") == 4 and 'data-track="1"' in page
    assert 'data-scope="video"' in page and "3 most suspicious frames" in page
    assert page.count("data-suspicious-frame=") == 3
    chosen = user_client.get(
        reverse("detection:analysis_frame", args=[analysis.public_id, 2]), headers={"HX-Request": "true"}
    )
    assert chosen.status_code == 200 and 'data-frame="2"' in chosen.content.decode()
    picture = user_client.get(reverse("detection:analysis_frame_image", args=[analysis.public_id, 2]))
    assert picture.status_code == 200 and picture["Content-Type"] == "image/webp"
    assert user_client.get(reverse("detection:analysis_frame", args=[analysis.public_id, 9])).status_code == 404


def test_another_user_cannot_see_a_frame(user, other_user, client, active_face_model, make_video):
    analysis = analyse_video(user, make_video(seconds=2))
    client.force_login(other_user)

    assert client.get(reverse("detection:analysis_frame_image", args=[analysis.public_id, 1])).status_code == 404
    assert client.get(reverse("detection:analysis_frame", args=[analysis.public_id, 1])).status_code == 404


def test_the_api_takes_a_video_and_answers_with_frames_timeline_and_progress(
    api_client, user, active_face_model, make_video, run_inline
):
    with run_inline():
        response = api_client.post(
            reverse("api:analysis-list") + "?wait=0",
            {"file": video_upload("clip.webm", make_video("c.webm", codec="vp9"))},
        )
    assert response.status_code in (201, 202), response.content
    detail = api_client.get(reverse("api:analysis-detail", args=[response.json()["id"]])).json()
    assert detail["kind"] == "video" and detail["media_type"] == "video/webm" and detail["progress"] == 100
    assert detail["video"]["frames_done"] == 4 and detail["video"]["aggregation"]["k"] == 3
    assert [point["t"] for point in detail["timeline"]] == pytest.approx([0, 1, 2, 3], abs=0.11)
    assert len(detail["frames"]) == 4 and len(detail["images"]["frames"]) == 4
    assert detail["frames"][2]["faces"][0]["track"] == 1
    frame_picture = api_client.get(detail["images"]["frames"][0])
    assert frame_picture.status_code == 200 and frame_picture["Content-Type"] == "image/webp"
    assert isinstance(detail["provenance"], list) and detail["provenance"]
    listed = api_client.get(reverse("api:analysis-list")).json()["results"][0]
    assert listed["kind"] == "video" and "frames" not in listed


@pytest.mark.parametrize(
    ("damage", "code"),
    [
        (lambda data: data[: len(data) // 3], "corrupt_video"),  # cut before the index MP4s keep at the end
        (lambda data: data[:64] + bytes(4096), "corrupt_video"),
    ],
)
def test_a_damaged_video_is_refused_and_nothing_is_kept(api_client, active_face_model, make_video, damage, code):
    response = api_client.post(reverse("api:analysis-list"), {"file": video_upload("clip.mp4", damage(make_video()))})

    assert response.status_code == 400 and response.json()["error"]["code"] == code
    assert "cannot be used" in response.json()["error"]["message"]
    assert Analysis.objects.count() == 0


def test_a_video_damaged_further_in_keeps_the_frames_before_the_damage_and_says_so(user, active_face_model, tmp_path):
    path = tmp_path / "long.webm"
    # WebM keeps its header first, so the file still opens when cut half-way through its frames; frames that all
    # differ spread the bytes evenly over the file.
    video_write(path, (picture(480, 320, seed=index) for index in range(6 * FPS)), fps=FPS, codec="vp9")
    data = path.read_bytes()
    analysis = analyse_video(user, data[: int(len(data) * 0.55)], name="long.webm")

    assert analysis.status == Analysis.Status.DONE, analysis.error_message
    assert 1 <= analysis.frames_done < analysis.frames_planned == 6
    assert analysis.stopped_reason and "rests on the" in analysis.stopped_reason


def test_a_video_stopped_by_its_time_limit_keeps_its_partial_timeline(user, active_face_model, make_video, monkeypatch):
    from detection.services import videos

    store = videos._frames_store
    calls = []

    def store_then_stop(analysis, frames):
        # While it runs, frames are judged by the model's threshold already (the timeline shows their verdicts).
        assert Analysis.objects.values_list("threshold", flat=True).get(pk=analysis.pk) == active_face_model.threshold
        calls.append(len(frames))
        if len(calls) == 2:
            raise SoftTimeLimitExceeded()
        return store(analysis, frames)

    monkeypatch.setattr(videos, "_frames_store", store_then_stop)
    monkeypatch.setattr("ml.video_analysis.BATCH_FRAMES", 2)
    analysis = analyse_video(user, make_video())

    assert analysis.status == Analysis.Status.DONE and analysis.frames_done == 2
    assert "time limit" in analysis.stopped_reason and "after 2 of 4 frames" in analysis.stopped_reason
    assert analysis.verdict_rule["frames"] == 2


def test_too_long_and_too_large_videos_are_refused(api_client, active_face_model, make_video, settings):
    settings.MAX_VIDEO_SECONDS = 2
    response = api_client.post(reverse("api:analysis-list"), {"file": video_upload("clip.mp4", make_video())})
    assert response.status_code == 400 and response.json()["error"]["code"] == "video_too_long"
    assert "4 s long; videos up to 2 s" in response.json()["error"]["message"]

    settings.MAX_VIDEO_SECONDS = 300
    settings.MAX_VIDEO_SIZE_MB, settings.MAX_VIDEO_SIZE = 1, 10_000
    response = api_client.post(reverse("api:analysis-list"), {"file": video_upload("clip.mp4", make_video())})
    assert response.status_code == 413 and response.json()["error"]["code"] == "file_too_large"
    assert Analysis.objects.count() == 0


def test_a_video_goes_to_the_video_queue_with_time_limits_for_its_length(
    user, active_face_model, make_video, monkeypatch, settings
):
    sent = []
    monkeypatch.setattr(dispatch, "send", lambda job, object_id, **limits: sent.append((job, limits)) or True)
    settings.ANALYSIS_SOFT_TIME_LIMIT, settings.ANALYSIS_TIME_LIMIT, settings.VIDEO_FRAME_TIME_LIMIT = 60, 90, 5

    with_faces = services.analysis_create(user=user, file=video_upload("clip.mp4", make_video()), source="api")
    services.analysis_enqueue(analysis_id=with_faces.analysis.pk)

    job, limits = sent[-1]
    assert job == dispatch.VIDEO and limits == {"soft_time_limit": 60 + 5 * 4, "time_limit": 90 + 5 * 4}
    assert settings.CELERY_TASK_ROUTES[dispatch.VIDEO.task] == {"queue": settings.VIDEO_QUEUE}


def test_a_video_named_like_an_image_is_still_a_video_and_an_image_named_mp4_still_an_image(
    user, active_face_model, make_video, upload
):
    as_photo = services.analysis_create(user=user, file=video_upload("holiday.jpg", make_video()), source="web")
    assert as_photo.analysis.kind == Analysis.Kind.VIDEO and as_photo.analysis.original.name.endswith(".mp4")
    as_video = services.analysis_create(user=user, file=upload("clip.mp4"), source="web")
    assert as_video.analysis.kind == Analysis.Kind.IMAGE and as_video.analysis.media_type == "image/jpeg"


def test_deleting_a_video_analysis_deletes_every_frame_picture(user, active_face_model, make_video, run_inline):
    analysis = analyse_video(user, make_video(seconds=2))
    storage = AnalysisFrame._meta.get_field("picture").storage
    names = [frame.picture.name for frame in analysis.frames.all()]
    assert names and all(storage.exists(name) for name in names)

    with run_inline():
        services.analysis_delete(analysis=analysis)

    assert not any(storage.exists(name) for name in names) and AnalysisFrame.objects.count() == 0


def test_the_upload_page_offers_videos_and_checks_their_limits(user_client):
    page = user_client.get(reverse("detection:upload")).content.decode()

    assert "video/mp4" in page and ".webm" in page and "data-max-video-bytes" in page


def test_the_admin_shows_a_videos_kind_frames_and_provenance(staff_client, user, active_face_model, make_video):
    analysis = analyse_video(user, make_video(seconds=2))

    listing = staff_client.get(reverse("admin:detection_analysis_changelist") + "?kind__exact=video")
    page = staff_client.get(reverse("admin:detection_analysis_change", args=[analysis.pk]))

    assert listing.status_code == 200 and "clip.mp4" in listing.content.decode()
    text = page.content.decode()
    assert page.status_code == 200 and "Frames done" in text and "FFmpeg" in text
