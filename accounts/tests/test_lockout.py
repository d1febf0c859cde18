"""Sign-in lockout (django-axes): after a few failures for one account, or from one address, sign-in pauses."""

import pytest
from django.urls import reverse

pytestmark = pytest.mark.django_db


def sign_in(client, username: str, password: str, address: str = "198.51.100.7"):
    return client.post(reverse("accounts:login"), {"username": username, "password": password}, REMOTE_ADDR=address)


def test_after_five_wrong_passwords_even_the_right_one_is_refused(client, user, password, settings):
    assert settings.AXES_FAILURE_LIMIT == 5
    for _ in range(4):
        assert sign_in(client, user.username, "wrong").status_code == 400

    locked = sign_in(client, user.username, "wrong")
    right_password = sign_in(client, user.username, password)

    assert locked.status_code == right_password.status_code == 429
    page = right_password.content.decode()
    assert "Too many sign-in attempts" in page and "failed 5 times in a row" in page
    assert "_auth_user_id" not in client.session


def test_the_lockout_is_per_account_from_any_address(client, user, password):
    for number in range(5):
        sign_in(client, user.username, "wrong", address=f"198.51.100.{number}")

    assert sign_in(client, user.username, password, address="203.0.113.50").status_code == 429


def test_the_lockout_is_per_address_across_accounts(client, user, other_user, password):
    for name in ("someone", "anyone", "noone", "everyone", user.username):
        sign_in(client, name, "wrong")

    assert sign_in(client, other_user.username, password).status_code == 429
    assert sign_in(client, other_user.username, password, address="203.0.113.50").status_code == 302


def test_the_admin_sign_in_is_locked_too(client, django_user_model):
    django_user_model.objects.create_superuser("root", "root@example.com", "admin-passphrase-77")
    for _ in range(5):
        client.post("/admin/login/", {"username": "root", "password": "wrong"}, REMOTE_ADDR="198.51.100.8")

    response = client.post(
        "/admin/login/", {"username": "root", "password": "admin-passphrase-77"}, REMOTE_ADDR="198.51.100.8"
    )

    assert response.status_code == 429


def test_a_success_before_the_limit_starts_the_count_again(client, user, password):
    for _ in range(4):
        sign_in(client, user.username, "wrong")
    assert sign_in(client, user.username, password).status_code == 302
    client.logout()

    for _ in range(4):
        assert sign_in(client, user.username, "wrong").status_code == 400
    assert sign_in(client, user.username, password).status_code == 302


def test_behind_proxies_the_forwarded_address_counts(client, user, other_user, password, settings):
    settings.NUM_PROXIES = 1
    for name in ("a", "b", "c", "d", "e"):
        client.post(
            reverse("accounts:login"),
            {"username": name, "password": "wrong"},
            REMOTE_ADDR="10.0.0.2",  # the proxy
            HTTP_X_FORWARDED_FOR="spoofed, 198.51.100.20",
        )

    other_client = client.__class__()
    fine = other_client.post(
        reverse("accounts:login"),
        {"username": other_user.username, "password": password},
        REMOTE_ADDR="10.0.0.2",
        HTTP_X_FORWARDED_FOR="198.51.100.21",
    )
    assert fine.status_code == 302  # another client behind the same proxy is not locked out
