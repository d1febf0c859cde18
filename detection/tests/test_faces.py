"""Face-aware analysis of photos: every face boxed, judged and pictured; the page, the API and the exports show them."""

import io

import pytest
from django.urls import reverse
from PIL import Image

from conftest import faceless_photo, jpeg_bytes, photo_with_faces
from detection import services
from detection.models import Analysis, AnalysisFace

pytestmark = pytest.mark.django_db

TWO_FACES = [(80, 120, 240), (620, 260, 150)]


def analyse(user, upload, photo, *, name="group.jpg", keep_original=True) -> Analysis:
    submission = services.analysis_create(
        user=user, file=upload(name, data=jpeg_bytes(photo)), source="web", keep_original=keep_original
    )
    services.analysis_run(analysis_id=submission.analysis.pk)
    return Analysis.objects.get(pk=submission.analysis.pk)


def test_a_photo_with_two_faces_gets_each_face_boxed_judged_and_pictured(user, active_face_model, upload):
    analysis = analyse(user, upload, photo_with_faces(TWO_FACES))

    faces = list(analysis.faces.all())
    assert analysis.status == Analysis.Status.DONE and analysis.scope == Analysis.Scope.FACES
    assert [face.number for face in faces] == [1, 2]
    for face, (left, top, side) in zip(faces, TWO_FACES, strict=True):
        centre_x, centre_y = face.left + face.width / 2, face.top + face.height / 2
        assert left < centre_x < left + side and top < centre_y < top + side
        assert 0.3 * side < face.width < side and 0.9 <= face.detection_score <= 1.0
        picture = Image.open(face.overlay.open("rb"))
        assert picture.format == "WEBP" and picture.width == picture.height
    assert analysis.probability_fake == max(face.probability_fake for face in faces)
    assert analysis.label == ("fake" if analysis.probability_fake >= analysis.threshold else "real")
    assert analysis.faces_ms is not None and analysis.small_faces == 0


def test_a_photo_without_a_face_is_judged_whole_and_flagged(user, active_face_model, upload, user_client):
    analysis = analyse(user, upload, faceless_photo(), name="coffee.jpg")

    assert analysis.status == Analysis.Status.DONE and analysis.scope == Analysis.Scope.NO_FACE
    assert analysis.faces.count() == 0 and analysis.probability_fake is not None
    page = user_client.get(analysis.get_absolute_url()).content.decode()
    assert 'data-scope="no_face"' in page and "No face found." in page
    assert "outside what it was trained and validated on" in page


def test_a_whole_image_model_ignores_faces(user, active_model, upload):
    analysis = analyse(user, upload, photo_with_faces(TWO_FACES))

    assert analysis.scope == Analysis.Scope.IMAGE and analysis.faces.count() == 0 and analysis.faces_ms is not None


def test_the_result_page_draws_the_boxes_over_the_image_and_shows_each_face(
    user, active_face_model, upload, user_client
):
    analysis = analyse(user, upload, photo_with_faces(TWO_FACES))

    page = user_client.get(analysis.get_absolute_url()).content.decode()

    for face in analysis.faces.all():
        assert f'data-face-box="{face.number}"' in page and f'href="#face-{face.number}"' in page
        assert f"left: {face.left / 1000 * 100:.2f}%" in page
        assert reverse("detection:analysis_face_image", args=[analysis.public_id, face.number]) in page
    assert "2 faces analysed; the most" in page


def test_face_pictures_are_served_to_their_owner_only(user, other_user, active_face_model, upload, client, user_client):
    analysis = analyse(user, upload, photo_with_faces(TWO_FACES))
    url = reverse("detection:analysis_face_image", args=[analysis.public_id, 1])

    response = user_client.get(url)
    assert response.status_code == 200 and response["Content-Type"] == "image/webp"
    assert Image.open(io.BytesIO(b"".join(response.streaming_content))).format == "WEBP"
    assert user_client.get(reverse("detection:analysis_face_image", args=[analysis.public_id, 3])).status_code == 404
    client.force_login(other_user)
    assert client.get(url).status_code == 404


def test_the_api_returns_the_faces_with_their_boxes_and_pictures(user, active_face_model, upload, client):
    from accounts.services import api_token_create

    analysis = analyse(user, upload, photo_with_faces(TWO_FACES))
    token = api_token_create(user=user, name="faces")[1]
    headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"}

    body = client.get(reverse("api:analysis-detail", args=[analysis.public_id]), **headers).json()

    assert body["scope"] == "faces" and body["small_faces"] == 0 and len(body["faces"]) == 2
    first = body["faces"][0]
    face = analysis.faces.get(number=1)
    assert first["box"] == {"left": face.left, "top": face.top, "width": face.width, "height": face.height}
    assert first["probability_fake"] == pytest.approx(face.probability_fake)
    assert first["verdict"] == face.verdict and first["label"] == face.label
    picture = client.get(first["image"], **headers)
    assert picture.status_code == 200 and picture["Content-Type"] == "image/webp"
    listed = client.get(reverse("api:analysis-list"), **headers).json()["results"][0]
    assert [f["number"] for f in listed["faces"]] == [1, 2]


def test_exports_carry_the_faces(user, active_face_model, upload, user_client):
    analysis = analyse(user, upload, photo_with_faces(TWO_FACES))

    exported = user_client.get(reverse("detection:analysis_json", args=[analysis.public_id])).json()
    csv_text = user_client.get(reverse("detection:history_csv")).content.decode()

    assert exported["result"]["scope"] == "faces" and len(exported["faces"]) == 2
    assert "most suspicious face decides" in exported["result"]["verdict_rule"]
    header, row = csv_text.splitlines()[:2]
    assert header.split(",")[8:10] == ["scope", "faces"] and row.split(",")[8:10] == ["faces", "2"]


def test_deleting_the_analysis_deletes_its_face_pictures(user, active_face_model, upload, run_inline, _media_in_tmp):
    with run_inline():
        analysis = services.analysis_create(
            user=user, file=upload("group.jpg", data=jpeg_bytes(photo_with_faces(TWO_FACES))), source="web"
        ).analysis
    stored = sorted(p.name for p in _media_in_tmp.rglob("*") if p.is_file() and "models" not in p.parts)
    assert sum("-face" in name for name in stored) == 2

    with run_inline():
        services.analysis_delete(analysis=Analysis.objects.get(pk=analysis.pk))

    assert not AnalysisFace.objects.exists()
    assert [p for p in _media_in_tmp.rglob("*") if p.is_file() and "models" not in p.parts] == []


def test_without_a_kept_original_face_pictures_are_no_sharper_than_the_thumbnail(user, active_face_model, upload):
    analysis = analyse(user, upload, photo_with_faces(TWO_FACES), keep_original=False)

    for face in analysis.faces.all():
        picture = Image.open(face.overlay.open("rb"))
        # The thumbnail shows the 1000 px photo at 256 px: a framed face (1.25 × the box's longer side) is shown
        # at that scale at most.
        assert picture.width <= round(max(face.width, face.height) * 1.25 * 256 / 1000) + 1


@pytest.mark.parametrize(
    ("size", "says"),
    [((1, 1), "too small to judge"), ((31, 400), "too small to judge"), ((10000, 200), "too narrow to judge")],
)
def test_tiny_or_extreme_images_are_refused_with_a_reason(user, active_face_model, upload, user_client, size, says):
    data = jpeg_bytes(Image.new("RGB", size, (120, 80, 60)))

    response = user_client.post(reverse("detection:upload"), {"files": [upload("strip.jpg", data=data)]})

    assert response.status_code == 400 and says in response.content.decode()
    assert not Analysis.objects.exists()
