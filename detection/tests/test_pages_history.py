"""History: only the user's own analyses, filtered, searched, sorted, paginated, exported and deleted in bulk."""

import csv
import io
import re
from datetime import datetime, timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from detection.models import Analysis
from detection.tests.factories import AnalysisFactory

pytestmark = pytest.mark.django_db

HISTORY_URL = reverse("detection:history")
CSV_URL = reverse("detection:history_csv")
BULK_URL = reverse("detection:bulk_delete")


def make_analysis(owner, name: str, *, p_fake: float | None = 0.9, status: str = "done", days_ago: int = 0):
    """An analysis row as the pipeline leaves it (the pictures are not needed to list it)."""
    outcome = {"done": {"done": True, "probability_fake": p_fake}, "failed": {"failed": True}}.get(status, {})
    analysis = AnalysisFactory(owner=owner, original_name=name, status=status, **outcome)
    if days_ago:
        Analysis.objects.filter(pk=analysis.pk).update(created_at=timezone.now() - timedelta(days=days_ago))
    return analysis


def listed(response) -> list[str]:
    """The file names in the history table, in order."""
    return re.findall(r'<td class="cell-name"><a href="[^"]+">([^<]+)</a>', response.content.decode())


@pytest.fixture
def mixed(user, other_user):
    """A user's analyses of every kind, and someone else's that must never show."""
    make_analysis(other_user, "not-yours.jpg", p_fake=0.99)
    return {
        "fake": make_analysis(user, "beach-fake.jpg", p_fake=0.97, days_ago=1),
        "real": make_analysis(user, "Portrait.png", p_fake=0.08, days_ago=3),
        "uncertain": make_analysis(user, "cat-uncertain.webp", p_fake=0.55, days_ago=10),
        "queued": make_analysis(user, "queued.jpg", status="queued"),
        "failed": make_analysis(user, "broken.jpg", status="failed", days_ago=2),
    }


def test_a_new_user_sees_a_helpful_empty_state(user_client):
    response = user_client.get(HISTORY_URL)

    html = response.content.decode()
    assert response.status_code == 200
    assert "No analyses yet" in html and f'href="{reverse("detection:upload")}"' in html
    assert "Analyse your first image" in html


def test_only_the_users_own_analyses_are_listed_newest_first(user_client, mixed):
    response = user_client.get(HISTORY_URL)

    assert listed(response) == ["queued.jpg", "beach-fake.jpg", "broken.jpg", "Portrait.png", "cat-uncertain.webp"]
    html = response.content.decode()
    assert "not-yours.jpg" not in html
    assert "5 analyses" in html


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"verdict": "fake"}, ["beach-fake.jpg"]),
        ({"verdict": "real"}, ["Portrait.png"]),
        ({"verdict": "uncertain"}, ["cat-uncertain.webp"]),
        ({"status": "failed"}, ["broken.jpg"]),
        ({"status": "queued"}, ["queued.jpg"]),
        ({"q": "PORTRAIT"}, ["Portrait.png"]),
        ({"q": ".jpg", "sort": "name"}, ["beach-fake.jpg", "broken.jpg", "queued.jpg"]),
        ({"sort": "oldest"}, ["cat-uncertain.webp", "Portrait.png", "broken.jpg", "beach-fake.jpg", "queued.jpg"]),
        ({"sort": "most_fake"}, ["beach-fake.jpg", "cat-uncertain.webp", "Portrait.png", "queued.jpg", "broken.jpg"]),
        ({"sort": "most_real", "status": "done"}, ["Portrait.png", "cat-uncertain.webp", "beach-fake.jpg"]),
    ],
)
def test_filters_search_and_sort(user_client, mixed, query, expected):
    response = user_client.get(HISTORY_URL, query)

    assert response.status_code == 200
    assert listed(response) == expected


def test_a_date_range_includes_both_ends(user_client, mixed):
    today = timezone.localdate()
    query = {"created_from": today - timedelta(days=3), "created_to": today - timedelta(days=1)}

    response = user_client.get(HISTORY_URL, query)

    assert listed(response) == ["beach-fake.jpg", "broken.jpg", "Portrait.png"]


def test_filters_that_match_nothing_say_so(user_client, mixed):
    html = user_client.get(HISTORY_URL, {"q": "no such file"}).content.decode()

    assert "No analyses match these filters" in html and "Clear the filters" in html


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"created_from": "last tuesday"}, "Enter a valid date."),
        ({"created_from": "2026-05-02", "created_to": "2026-05-01"}, "The end date is before the start date."),
        ({"verdict": "probably"}, "Select a valid choice. probably is not one of the available choices."),
    ],
)
def test_invalid_filters_are_400_with_the_message_next_to_the_field(user_client, mixed, query, message):
    response = user_client.get(HISTORY_URL, query)

    html = response.content.decode()
    assert response.status_code == 400
    field = "created_to" if "end date" in message else next(iter(query))
    next_to_field = rf'id="id_{field}"[^>]*>(.*?</select>)?\s*<p class="field-error" id="{field}-error" role="alert">'
    assert re.search(next_to_field + re.escape(message), html, re.DOTALL)


def test_pages_of_twenty(user_client, user):
    for number in range(25):
        make_analysis(user, f"photo-{number:02}.jpg", days_ago=number)

    first = user_client.get(HISTORY_URL)
    second = user_client.get(HISTORY_URL, {"page": 2})

    assert listed(first) == [f"photo-{n:02}.jpg" for n in range(20)]
    assert listed(second) == [f"photo-{n:02}.jpg" for n in range(20, 25)]
    assert "Page 1 of 2" in first.content.decode() and 'rel="next"' in first.content.decode()
    assert 'href="?page=1" rel="prev"' in second.content.decode()


def test_paging_keeps_the_filters(user_client, user):
    for number in range(22):
        make_analysis(user, f"fake-{number:02}.jpg", p_fake=0.95, days_ago=number)

    html = user_client.get(HISTORY_URL, {"verdict": "fake", "sort": "oldest"}).content.decode()

    assert 'href="?verdict=fake&amp;sort=oldest&amp;page=2" rel="next"' in html


def test_htmx_filtering_answers_with_the_results_only(user_client, mixed):
    response = user_client.get(HISTORY_URL, {"verdict": "fake"}, HTTP_HX_REQUEST="true")

    html = response.content.decode()
    assert "<html" not in html and 'id="history-filters"' not in html
    assert listed(response) == ["beach-fake.jpg"]
    assert f'href="{CSV_URL}?verdict=fake"' in html
    assert "HX-Request" in response["Vary"]


def test_csv_export_has_the_filtered_own_analyses(user_client, user, mixed):
    make_analysis(user, "=HYPERLINK(evil).jpg", p_fake=0.93)

    response = user_client.get(CSV_URL, {"verdict": "fake"})

    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert re.fullmatch(r'attachment; filename="analyses-\d{4}-\d\d-\d\d\.csv"', response["Content-Disposition"])
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert [row["file_name"] for row in rows] == ["'=HYPERLINK(evil).jpg", "beach-fake.jpg"]
    beach = rows[1]
    assert beach["id"] == str(mixed["fake"].public_id)
    assert (beach["status"], beach["verdict"], beach["probability_fake"]) == ("done", "fake", "0.970000")
    assert beach["model_version"] == "test-detector 1" and beach["sha256"] == mixed["fake"].sha256
    assert datetime.fromisoformat(beach["created_at"]).date() == timezone.localdate() - timedelta(days=1)


def test_csv_export_refuses_invalid_filters(user_client):
    response = user_client.get(CSV_URL, {"created_to": "31/02/2026"})

    assert response.status_code == 400
    assert "The filters are not valid. To: Enter a valid date." in response.content.decode()


def test_bulk_delete_asks_first_then_deletes_only_the_users_own(user_client, user, other_user, mixed):
    theirs = Analysis.objects.get(owner=other_user)
    chosen = [mixed["fake"].public_id, mixed["failed"].public_id, theirs.public_id]

    confirm = user_client.post(BULK_URL, {"analyses": chosen, "next": "/analyses/?verdict=fake"})

    html = confirm.content.decode()
    assert confirm.status_code == 200
    assert "Delete 2 analyses?" in html and "beach-fake.jpg" in html and "broken.jpg" in html
    assert "not-yours.jpg" not in html
    assert Analysis.objects.count() == 6

    done = user_client.post(
        BULK_URL, {"analyses": chosen, "confirm": "yes", "next": "/analyses/?verdict=fake"}, follow=True
    )

    assert done.redirect_chain == [("/analyses/?verdict=fake", 302)]
    assert "Deleted 2 analyses and their pictures." in done.content.decode()
    assert not Analysis.objects.filter(pk__in=[mixed["fake"].pk, mixed["failed"].pk]).exists()
    assert Analysis.objects.filter(pk=theirs.pk).exists()
    assert Analysis.objects.filter(owner=user).count() == 3


def test_bulk_delete_never_redirects_off_site(user_client, mixed):
    response = user_client.post(
        BULK_URL, {"analyses": [mixed["real"].public_id], "confirm": "yes", "next": "https://evil.example/"}
    )

    assert response.status_code == 302 and response["Location"] == HISTORY_URL


@pytest.mark.parametrize(
    ("data", "status", "message"),
    [
        ({}, 400, "Select at least one analysis to delete."),
        ({"analyses": ["not-a-uuid"]}, 400, "“not-a-uuid” is not an analysis ID."),
    ],
)
def test_bulk_delete_with_a_bad_selection_says_why(user_client, mixed, data, status, message):
    response = user_client.post(BULK_URL, data)

    assert response.status_code == status
    assert message in response.content.decode()
    assert Analysis.objects.count() == 6


def test_bulk_delete_of_only_someone_elses_is_404(user_client, other_user, mixed):
    theirs = Analysis.objects.get(owner=other_user)

    response = user_client.post(BULK_URL, {"analyses": [theirs.public_id], "confirm": "yes"})

    assert response.status_code == 404
    assert Analysis.objects.filter(pk=theirs.pk).exists()


def test_bulk_delete_needs_post(user_client):
    assert user_client.get(BULK_URL).status_code == 405


def test_the_verdict_filter_agrees_with_the_verdict_shown(user_client, user, settings):
    settings.UNCERTAIN_MARGIN = 0.1
    # Around both edges of the uncertain band, including values that land on them exactly.
    for p_fake in (0.0, 0.3, 0.39, 0.4, 0.41, 0.45, 0.5, 0.55, 0.59, 0.6, 0.61, 0.7, 1.0):
        make_analysis(user, f"p-{p_fake:.2f}.jpg", p_fake=p_fake)

    for verdict in ("real", "fake", "uncertain"):
        shown = {a.original_name for a in Analysis.objects.filter(owner=user) if a.verdict == verdict}
        assert set(listed(user_client.get(HISTORY_URL, {"verdict": verdict}))) == shown, verdict
