import secrets

from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from accounts.models import ApiToken, User, api_token_hash

# Refresh last_used_at at most this often, so a busy API client does not turn every request into a write.
LAST_USED_RESOLUTION_SECONDS = 60


@transaction.atomic
def user_create(*, username: str, email: str, password: str) -> User:
    if User.objects.filter(username__iexact=username).exists():
        raise ValidationError({"username": "That username is taken. Please choose another one."})
    user = User(username=username, email=email)
    validate_password(password, user)
    user.set_password(password)
    user.full_clean()
    user.save()
    return user


def api_token_create(*, user: User, name: str) -> tuple[ApiToken, str]:
    """Create a token and return it with its plain value, which is never stored and cannot be shown again."""
    name = name.strip()
    if not name:
        raise ValidationError({"name": "Give the token a name, so you can tell it apart later."})
    if len(name) > 100:
        raise ValidationError({"name": "Token names are at most 100 characters."})
    if ApiToken.objects.filter(user=user, name=name, revoked_at__isnull=True).exists():
        raise ValidationError({"name": f"You already have an active token named “{name}”."})
    raw_token = ApiToken.PREFIX + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(
        user=user, name=name, token_hash=api_token_hash(raw_token), hint=raw_token[: len(ApiToken.PREFIX) + 4]
    )
    return token, raw_token


def api_token_revoke(*, user: User, token_id: int) -> ApiToken:
    token = ApiToken.objects.get(id=token_id, user=user)
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
    return token


def api_token_authenticate(*, raw_token: str) -> ApiToken | None:
    """The active token matching raw_token, with its last-used time refreshed; None when unknown or revoked."""
    token = (
        ApiToken.objects.select_related("user")
        .filter(token_hash=api_token_hash(raw_token), revoked_at__isnull=True, user__is_active=True)
        .first()
    )
    if token is None:
        return None
    now = timezone.now()
    if token.last_used_at is None or (now - token.last_used_at).total_seconds() >= LAST_USED_RESOLUTION_SECONDS:
        ApiToken.objects.filter(id=token.id).update(last_used_at=now)
        token.last_used_at = now
    return token
