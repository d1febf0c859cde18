"""Users flag wrong verdicts (result page and API), staff confirm or reject them in the admin, and the confirmed,
consented files are frozen into versions of the regression set."""

import hashlib

import pytest
from django.contrib.admin.models import ADDITION, CHANGE, LogEntry
from django.core.files.base import ContentFile
from django.core.management import CommandError, call_command
from django.urls import reverse

from detection import services
from detection.models import Analysis, RegressionSet, VerdictFlag
from detection.services import feedback
from detection.tests.factories import AnalysisFactory

pytestmark = pytest.mark.django_db

FLAGS = "admin:detection_verdictflag_changelist"


def flag_url(analysis) -> str:
    return reverse("api:analysis-flag", args=[analysis.public_id])


@pytest.fixture
def finished(user, make_image_bytes):
    """finished(probability_fake=0.9, seed=0): the user's done analysis with its original PNG stored."""

    def make(*, owner=None, probability_fake: float = 0.9, seed: int = 0) -> Analysis:
        analysis = AnalysisFactory(owner=owner or user, done=True, probability_fake=probability_fake)
        analysis.original.save(f"{analysis.public_id}.png", ContentFile(make_image_bytes(64, 64, fmt="PNG", seed=seed)))
        return analysis

    return make


def page_messages(response) -> str:
    return " ".join(str(m) for m in response.context["messages"])


def confirm(staff_client, *flags):
    return staff_client.post(
        reverse(FLAGS), {"action": "confirm", "_selected_action": [flag.pk for flag in flags]}, follow=True
    )


def build(staff_client, flag):
    return staff_client.post(
        reverse(FLAGS), {"action": "build_regression_set", "_selected_action": [flag.pk]}, follow=True
    )


# --- Flagging on the result page --------------------------------------------------------------------------------


def test_the_owner_flags_a_verdict_on_the_result_page_and_sees_its_state(
    user_client, user, active_model, run_inline, upload
):
    with run_inline():
        analysis = services.analysis_create(user=user, file=upload("holiday.jpg", seed=3), source="web").analysis
    analysis.refresh_from_db()
    page = user_client.get(analysis.get_absolute_url()).content.decode()
    assert 'id="flag"' in page and "You may keep this file to test future models" in page
    assert "<script>" not in page  # CSP: the form works through htmx attributes only

    said = "real" if analysis.verdict == "fake" else "fake"
    response = user_client.post(
        reverse("detection:analysis_flag", args=[analysis.public_id]),
        {"label": said, "note": "My own photo.", "consent": "on"},
        HTTP_HX_REQUEST="true",
    )

    assert response.status_code == 200
    html = response.content.decode()
    assert 'data-flag-status="open"' in html and "waiting for review" in html
    flag = VerdictFlag.objects.get()
    assert (flag.owner, flag.analysis, flag.label, flag.note, flag.consent) == (
        user,
        analysis,
        said,
        "My own photo.",
        True,
    )
    assert flag.model_version == analysis.model_version == "test-detector 1"
    assert flag.probability_fake == analysis.probability_fake
    assert 'data-flag-status="open"' in user_client.get(analysis.get_absolute_url()).content.decode()


def test_without_script_flagging_reloads_the_page_with_a_message(user_client, finished):
    analysis = finished()
    response = user_client.post(
        reverse("detection:analysis_flag", args=[analysis.public_id]), {"label": "real"}, follow=True
    )
    assert response.redirect_chain[-1][0] == analysis.get_absolute_url()
    assert "your report is recorded" in page_messages(response)
    assert VerdictFlag.objects.get().consent is False  # unticked: no consent


def test_a_bad_label_on_the_page_is_explained_in_the_fragment(user_client, finished):
    analysis = finished()
    response = user_client.post(
        reverse("detection:analysis_flag", args=[analysis.public_id]), {"label": "maybe"}, HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 400
    assert "Say which label is right" in response.content.decode()
    assert not VerdictFlag.objects.exists()


def test_nobody_flags_someone_elses_analysis_on_the_page(client, other_user, finished):
    analysis = finished()
    client.force_login(other_user)
    response = client.post(reverse("detection:analysis_flag", args=[analysis.public_id]), {"label": "real"})
    assert response.status_code == 404 and not VerdictFlag.objects.exists()


# --- Flagging through the API -----------------------------------------------------------------------------------


def test_the_api_records_a_flag_with_consent_and_the_verdict_at_flagging_time(api_client, user, finished):
    analysis = finished(probability_fake=0.93)

    response = api_client.post(
        flag_url(analysis), {"label": "real", "note": "Taken by me.", "consent": True}, format="json"
    )

    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["status"] == "open" and body["label"] == "real" and body["consent"] is True
    assert body["probability_fake"] == 0.93 and body["model_version"] == "test-detector 1"
    assert api_client.get(flag_url(analysis)).json()["note"] == "Taken by me."
    detail = api_client.get(reverse("api:analysis-detail", args=[analysis.public_id])).json()
    assert detail["flag"] == {"status": "open", "label": "real"}


def test_form_data_works_too_and_flagging_again_updates_the_one_flag_while_open(api_client, finished):
    analysis = finished(probability_fake=0.5)  # uncertain: either label may be said
    first = api_client.post(flag_url(analysis), {"label": "fake", "consent": "true"}, format="multipart")
    again = api_client.post(flag_url(analysis), {"label": "real", "note": "Second thoughts."}, format="json")

    assert first.status_code == again.status_code == 201
    flag = VerdictFlag.objects.get()  # one flag per analysis and user
    assert (flag.label, flag.note, flag.consent) == ("real", "Second thoughts.", False)


def test_a_reviewed_flag_is_final(api_client, finished, staff_client):
    analysis = finished()
    api_client.post(flag_url(analysis), {"label": "real"}, format="json")
    staff_client.post(reverse(FLAGS), {"action": "reject", "_selected_action": [VerdictFlag.objects.get().pk]})

    response = api_client.post(flag_url(analysis), {"label": "real", "note": "Really!"}, format="json")

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "flag_reviewed" and "final" in response.json()["error"]["message"]
    assert VerdictFlag.objects.get().note == "" and VerdictFlag.objects.get().status == "rejected"


@pytest.mark.parametrize(
    ("payload", "field", "words"),
    [
        ({"label": "maybe"}, "label", "Say which label is right"),
        ({}, "label", "required"),
        ({"label": "real", "note": "x" * 2001}, "note", "2000"),
        ({"label": "fake"}, "label", "already says fake"),  # the verdict is fake: nothing to flag
    ],
)
def test_bad_flags_are_400_with_the_field(api_client, finished, payload, field, words):
    response = api_client.post(flag_url(finished(probability_fake=0.9)), payload, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["field"] == field and words in response.json()["error"]["message"]
    assert not VerdictFlag.objects.exists()


def test_an_unfinished_or_failed_analysis_cannot_be_flagged(api_client, user):
    for analysis in (AnalysisFactory(owner=user), AnalysisFactory(owner=user, failed=True)):
        response = api_client.post(flag_url(analysis), {"label": "real"}, format="json")
        assert response.status_code == 400 and "Only a finished analysis" in response.json()["error"]["message"]
    assert not VerdictFlag.objects.exists()


def test_someone_elses_analysis_and_a_missing_flag_are_404(api_client, other_user, finished):
    theirs = finished(owner=other_user)
    assert api_client.post(flag_url(theirs), {"label": "real"}, format="json").status_code == 404
    assert api_client.get(flag_url(theirs)).status_code == 404
    mine = finished()
    assert api_client.get(flag_url(mine)).status_code == 404
    assert api_client.get(reverse("api:analysis-detail", args=[mine.public_id])).json()["flag"] is None


# --- Triage in the admin ----------------------------------------------------------------------------------------


def flagged(finished, *, label="real", consent=True, seed=0, probability_fake=0.9) -> VerdictFlag:
    analysis = finished(seed=seed, probability_fake=probability_fake)
    return feedback.verdict_flag_submit(analysis=analysis, user=analysis.owner, label=label, consent=consent)


def test_confirming_with_consent_copies_the_original_for_the_regression_set(staff_client, finished):
    flag = flagged(finished, consent=True)
    original = flag.analysis.original.read()

    response = confirm(staff_client, flag)

    flag.refresh_from_db()
    assert flag.status == "confirmed" and flag.reviewed_by == staff_client.staff and flag.reviewed_at is not None
    assert flag.image.name.startswith("regression/") and flag.image.read() == original
    assert flag.sha256 == hashlib.sha256(original).hexdigest()
    assert "joins the regression set" in page_messages(response)
    entry = LogEntry.objects.get(action_flag=CHANGE, object_id=str(flag.pk))
    assert entry.change_message.startswith("Confirmed")
    page = staff_client.get(reverse(FLAGS)).content.decode()
    assert "the verdict said fake" in page and flag.analysis.original_name in page


def test_confirming_without_consent_keeps_nothing(staff_client, finished):
    flag = flagged(finished, consent=False)
    response = confirm(staff_client, flag)
    flag.refresh_from_db()
    assert flag.status == "confirmed" and not flag.image and flag.sha256 == ""
    assert "did not consent" in page_messages(response)


def test_confirming_when_the_original_is_gone_still_confirms_and_says_so(staff_client, finished):
    deleted, expired = flagged(finished, seed=1), flagged(finished, seed=2)
    deleted.analysis.original.storage.delete(deleted.analysis.original.name)  # gone from storage
    Analysis.objects.filter(pk=expired.analysis.pk).update(original="")  # retention emptied the field

    response = confirm(staff_client, deleted, expired)

    for flag in (deleted, expired):
        flag.refresh_from_db()
        assert flag.status == "confirmed" and not flag.image
    text = page_messages(response)
    assert text.count("was not added to the regression set") == 2
    assert "missing from storage" in text and "no longer stored" in text


def test_rejecting_is_logged_and_a_second_review_changes_nothing(staff_client, finished):
    flag = flagged(finished)
    staff_client.post(reverse(FLAGS), {"action": "reject", "_selected_action": [flag.pk]})
    response = confirm(staff_client, flag)

    flag.refresh_from_db()
    assert flag.status == "rejected" and not flag.image
    assert "was already rejected" in page_messages(response)
    assert LogEntry.objects.get(object_id=str(flag.pk)).change_message == "Rejected."


# --- Versions of the regression set -----------------------------------------------------------------------------


def test_versions_are_built_refused_when_empty_or_unchanged(staff_client, finished):
    real = flagged(finished, label="real", seed=1, probability_fake=0.9)
    unconsented = flagged(finished, label="real", consent=False, seed=2)
    assert "would be empty" in page_messages(build(staff_client, real))

    fake = flagged(finished, label="fake", seed=3, probability_fake=0.1)
    confirm(staff_client, real, unconsented)
    assert "no fake one yet" in page_messages(build(staff_client, real))
    assert not RegressionSet.objects.exists()

    confirm(staff_client, fake)
    response = build(staff_client, real)
    first = RegressionSet.objects.get()
    assert first.version == 1 and "Built regression set v1 (2 files)" in page_messages(response)
    real.refresh_from_db()
    assert first.manifest[0] == {"flag": real.pk, "sha256": real.sha256, "label": "real", "file": real.image.name}
    assert [entry["label"] for entry in first.manifest] == ["real", "fake"]
    assert LogEntry.objects.filter(action_flag=ADDITION, object_id=str(first.pk)).exists()

    assert "Nothing changed since regression set v1" in page_messages(build(staff_client, real))
    with pytest.raises(CommandError, match="Nothing changed since regression set v1"):
        call_command("build_regression_set")

    confirm(staff_client, flagged(finished, label="fake", seed=4, probability_fake=0.2))
    call_command("build_regression_set")
    second = RegressionSet.objects.get(version=2)
    assert len(second.manifest) == 3 and len(RegressionSet.objects.get(version=1).manifest) == 2
