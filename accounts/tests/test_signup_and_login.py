import pytest
from django.urls import reverse

from accounts.models import User

pytestmark = pytest.mark.django_db


def signup(client, **overrides):
    data = {
        "username": "bob",
        "email": "bob@example.com",
        "password1": "a-long-unusual-passphrase-7",
        "password2": "a-long-unusual-passphrase-7",
        **overrides,
    }
    return client.post(reverse("accounts:signup"), data)


def test_signup_creates_the_account_and_signs_in(client):
    response = signup(client)

    assert response.status_code == 302
    user = User.objects.get(username="bob")
    assert user.email == "bob@example.com"
    assert user.check_password("a-long-unusual-passphrase-7")
    assert client.get(reverse("accounts:profile")).status_code == 200


def test_signup_refuses_a_taken_username_whatever_its_case(client, user):
    response = signup(client, username="ALICE")

    assert response.status_code == 400
    assert "That username is taken" in response.content.decode()
    assert User.objects.filter(username__iexact="alice").count() == 1


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"password2": "something-else-entirely-9"}, "The two password fields didn’t match."),
        ({"password1": "short", "password2": "short"}, "This password is too short."),
        ({"password1": "12345678901", "password2": "12345678901"}, "This password is entirely numeric."),
        ({"email": "not-an-email"}, "Enter a valid email address."),
        ({"email": ""}, "This field is required."),
        ({"username": "bad name!"}, "Enter a valid username."),
    ],
)
def test_signup_explains_invalid_data(client, overrides, message):
    response = signup(client, **overrides)

    assert response.status_code == 400
    assert message in response.content.decode()
    assert not User.objects.filter(username=overrides.get("username", "bob")).exists()


def test_login_with_the_right_password(client, user, password):
    response = client.post(reverse("accounts:login"), {"username": "alice", "password": password})

    assert response.status_code == 302
    assert client.get(reverse("accounts:profile")).status_code == 200


def test_login_with_a_wrong_password_says_so(client, user):
    response = client.post(reverse("accounts:login"), {"username": "alice", "password": "wrong"})

    assert response.status_code == 400
    assert "Please enter a correct username and password" in response.content.decode()
    assert client.get(reverse("accounts:profile")).status_code == 302


def test_logout_ends_the_session(user_client):
    response = user_client.post(reverse("accounts:logout"))

    assert response.status_code == 302
    assert user_client.get(reverse("accounts:profile")).status_code == 302


def test_profile_needs_sign_in(client):
    response = client.get(reverse("accounts:profile"))

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("accounts:login"))
