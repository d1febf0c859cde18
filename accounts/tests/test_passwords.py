import re

import pytest
from django.core import mail
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
