import re

import pytest
from django.core import mail
from django.db import IntegrityError
from django.urls import reverse

pytestmark = pytest.mark.django_db


def test_password_change(user_client, user, password):
    response = user_client.post(
        reverse("accounts:password_change"),
        {
            "old_password": password,
            "new_password1": "another-long-passphrase-8",
            "new_password2": "another-long-passphrase-8",
        },
    )

    assert response.status_code == 302
    user.refresh_from_db()
    assert user.check_password("another-long-passphrase-8")


def test_password_change_with_a_wrong_old_password(user_client, user, password):
    response = user_client.post(
        reverse("accounts:password_change"),
        {
            "old_password": "nope",
            "new_password1": "another-long-passphrase-8",
            "new_password2": "another-long-passphrase-8",
        },
    )

    assert "Your old password was entered incorrectly" in response.content.decode()
    user.refresh_from_db()
    assert user.check_password(password)


def test_password_reset_by_e_mail_link(client, user):
    response = client.post(reverse("accounts:password_reset"), {"email": "alice@example.com"})
    assert response.status_code == 302
    assert len(mail.outbox) == 1
    link = re.search(r"https?://[^/]+(/accounts/password/reset/\S+)", mail.outbox[0].body).group(1)

    form_page = client.get(link, follow=True)
    assert form_page.status_code == 200
    done = client.post(
        form_page.redirect_chain[-1][0],
        {"new_password1": "brand-new-passphrase-9", "new_password2": "brand-new-passphrase-9"},
    )

    assert done.status_code == 302
    user.refresh_from_db()
    assert user.check_password("brand-new-passphrase-9")


def test_password_reset_for_an_unknown_address_reveals_nothing(client, user):
    response = client.post(reverse("accounts:password_reset"), {"email": "nobody@example.com"})

    assert response.status_code == 302
    assert mail.outbox == []


def test_a_password_change_with_mismatched_passwords_is_400(user_client, user, password):
    response = user_client.post(
        reverse("accounts:password_change"),
        {"old_password": password, "new_password1": "another-long-passphrase-8", "new_password2": "different-one-8"},
    )

    assert response.status_code == 400
    assert "The two password fields didn’t match." in response.content.decode()


def test_password_reset_mails_are_limited_per_address_and_per_e_mail(client, user, settings):
    settings.PASSWORD_RESET_RATE = "3/hour"
    for _ in range(3):
        assert client.post(reverse("accounts:password_reset"), {"email": "alice@example.com"}).status_code == 302

    refused = client.post(reverse("accounts:password_reset"), {"email": "alice@example.com"})
    # From another address, for the same e-mail: still refused (the mailbox is what is protected).
    elsewhere = client.post(
        reverse("accounts:password_reset"), {"email": "ALICE@example.com"}, REMOTE_ADDR="203.0.113.9"
    )

    assert refused.status_code == elsewhere.status_code == 429
    assert "Too many password reset e-mails" in refused.content.decode()
    assert len(mail.outbox) == 3


def test_e_mail_addresses_are_unique_whatever_their_case(client, user):
    from accounts.models import User

    response = client.post(
        reverse("accounts:signup"),
        {
            "username": "alice2",
            "email": "ALICE@example.com",
            "password1": "a-long-unusual-passphrase-81",
            "password2": "a-long-unusual-passphrase-81",
        },
    )

    assert response.status_code == 400
    assert "An account with this e-mail address already exists." in response.content.decode()
    with pytest.raises(IntegrityError):
        User.objects.create_user("alice3", "Alice@Example.com", "x")


def test_the_migration_names_accounts_that_share_an_address(transactional_db):
    """Migrating back, two accounts share an address (any case): migrating forward stops and names them."""
    from django.core.management import call_command

    call_command("migrate", "accounts", "0001", verbosity=0)
    from django.db import connection

    with connection.cursor() as cursor:
        for pk, name, email in ((901, "bob", "bob@example.com"), (902, "bobby", "BOB@example.com")):
            cursor.execute(
                "INSERT INTO accounts_user (id, password, is_superuser, username, first_name, last_name, email, "
                "is_staff, is_active, date_joined) VALUES (%s, '', false, %s, '', '', %s, false, true, '2026-01-01')",
                [pk, name, email],
            )
    try:
        with pytest.raises(RuntimeError, match=r"bob@example.com: bob \(id 901\), bobby \(id 902\)"):
            call_command("migrate", "accounts", verbosity=0)
    finally:
        with connection.cursor() as cursor:
            cursor.execute("DELETE FROM accounts_user WHERE id IN (901, 902)")
        call_command("migrate", verbosity=0)


def test_a_password_change_or_reset_revokes_every_api_token_and_says_so(user_client, user, password):
    from accounts.services import api_token_create

    api_token_create(user=user, name="laptop")
    api_token_create(user=user, name="ci")
    assert "revokes all your API tokens" in user_client.get(reverse("accounts:profile")).content.decode()

    user_client.post(
        reverse("accounts:password_change"),
        {"old_password": password, "new_password1": "another-long-8-pass", "new_password2": "another-long-8-pass"},
    )

    assert user.api_tokens.filter(revoked_at__isnull=True).count() == 0
    assert user.api_tokens.count() == 2


def test_sign_out_everywhere_ends_every_session_and_revokes_tokens(client, user, django_user_model):
    from django.test import Client

    from accounts.services import api_token_create

    _, raw = api_token_create(user=user, name="laptop")
    phone, laptop = Client(), client
    phone.force_login(user)
    laptop.force_login(user)
    assert phone.get(reverse("accounts:profile")).status_code == 200

    response = laptop.post(reverse("accounts:sign_out_everywhere"))

    assert response.status_code == 302 and response["Location"] == reverse("accounts:login")
    assert phone.get(reverse("accounts:profile")).status_code == 302  # back to sign-in
    assert laptop.get(reverse("accounts:profile")).status_code == 302
    assert Client(HTTP_AUTHORIZATION=f"Bearer {raw}").get("/api/v1/analyses/").status_code == 401
