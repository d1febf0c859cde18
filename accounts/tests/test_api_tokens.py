import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from accounts import services
from accounts.models import ApiToken

pytestmark = pytest.mark.django_db


def test_token_is_shown_once_and_stored_only_as_a_hash(user_client, user):
    response = user_client.post(reverse("accounts:token_create"), {"name": "laptop"})

    assert response.status_code == 200
    token = ApiToken.objects.get(user=user)
    raw = response.context["raw_token"]
    assert raw.startswith("dfd_") and len(raw) > 40
    assert raw in response.content.decode()
    assert raw not in {token.token_hash, token.hint, token.name}
    assert services.api_token_authenticate(raw_token=raw) == token
    # The profile page later shows only the hint, never the secret.
    assert raw not in user_client.get(reverse("accounts:profile")).content.decode()


def test_several_named_tokens_per_user(user):
    services.api_token_create(user=user, name="laptop")
    services.api_token_create(user=user, name="ci")

    assert sorted(user.api_tokens.values_list("name", flat=True)) == ["ci", "laptop"]


def test_duplicate_or_empty_names_are_refused_with_a_message(user_client, user):
    user_client.post(reverse("accounts:token_create"), {"name": "laptop"})

    duplicate = user_client.post(reverse("accounts:token_create"), {"name": "laptop"})
    empty = user_client.post(reverse("accounts:token_create"), {"name": "  "})

    assert duplicate.status_code == 400
    assert "You already have an active token named “laptop”." in duplicate.content.decode()
    assert empty.status_code == 400
    assert "This field is required." in empty.content.decode()
    assert ApiToken.objects.filter(user=user).count() == 1


def test_revoked_token_no_longer_authenticates_and_its_name_is_free_again(user_client, user):
    token, raw = services.api_token_create(user=user, name="laptop")

    response = user_client.post(reverse("accounts:token_revoke", args=[token.id]), HTTP_HX_REQUEST="true")

    assert response.status_code == 200
    assert "is revoked" in response.content.decode()
    assert services.api_token_authenticate(raw_token=raw) is None
    services.api_token_create(user=user, name="laptop")


def test_another_users_token_cannot_be_revoked(client, user, other_user):
    token, raw = services.api_token_create(user=user, name="laptop")
    client.force_login(other_user)

    response = client.post(reverse("accounts:token_revoke", args=[token.id]))

    assert response.status_code == 404
    assert services.api_token_authenticate(raw_token=raw) == token


def test_unknown_token_does_not_authenticate(user):
    services.api_token_create(user=user, name="laptop")

    assert services.api_token_authenticate(raw_token="dfd_not-a-real-token") is None


def test_last_used_time_is_recorded(user):
    token, raw = services.api_token_create(user=user, name="laptop")
    assert token.last_used_at is None

    services.api_token_authenticate(raw_token=raw)

    token.refresh_from_db()
    assert token.last_used_at is not None


def test_create_api_token_command_prints_a_working_token(user, capsys):
    call_command("create_api_token", "alice", "--name", "deploy")

    raw = capsys.readouterr().out.strip()
    token = services.api_token_authenticate(raw_token=raw)
    assert token is not None and token.name == "deploy" and token.user == user


def test_create_api_token_command_for_an_unknown_user():
    with pytest.raises(CommandError, match="No user named “ghost”"):
        call_command("create_api_token", "ghost")
