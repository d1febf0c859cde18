import json
import secrets
import zipfile

from django.conf import settings
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django_ratelimit.core import is_ratelimited

from accounts.models import ApiToken, User, api_token_hash
from deepfake_site.client_ip import client_ip
from detection.errors import StorageUnavailable
from detection.models import Analysis
from detection.presentation import analysis_export
from detection.selectors import analysis_list
from detection.services import analysis_files_delete, analysis_pictures_read

# Refresh last_used_at at most this often, so a busy API client does not turn every request into a write.
LAST_USED_RESOLUTION_SECONDS = 60
# Active API tokens per user: enough for every script and machine, few enough to keep track of.
MAX_ACTIVE_TOKENS = 10


@transaction.atomic
def user_create(*, username: str, email: str, password: str) -> User:
    if User.objects.filter(username__iexact=username).exists():
        raise ValidationError({"username": "That username is taken. Please choose another one."})
    if email and User.objects.filter(email__iexact=email).exists():
        raise ValidationError({"email": "An account with this e-mail address already exists."})
    user = User(username=username, email=email)
    validate_password(password, user)
    user.set_password(password)
    user.full_clean()
    user.save()
    return user


@transaction.atomic
def api_token_create(*, user: User, name: str) -> tuple[ApiToken, str]:
    """Create a token and return it with its plain value, which is never stored and cannot be shown again."""
    User.objects.select_for_update().filter(pk=user.pk).first()  # one creation at a time per user: the cap holds
    name = name.strip()
    if not name:
        raise ValidationError({"name": "Give the token a name, so you can tell it apart later."})
    if len(name) > 100:
        raise ValidationError({"name": "Token names are at most 100 characters."})
    active = ApiToken.objects.filter(user=user, revoked_at__isnull=True)
    if active.filter(name=name).exists():
        raise ValidationError({"name": f"You already have an active token named “{name}”."})
    if active.count() >= MAX_ACTIVE_TOKENS:
        raise ValidationError(
            {"name": f"You have {MAX_ACTIVE_TOKENS} active tokens, the most allowed. Revoke one you no longer use."}
        )
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


# --- The user's data: export and deletion ---------------------------------------------------------------------


class AccountStorageError(Exception):
    """The file storage could not be read or changed: a message the account's owner can act on."""


EXPORT_README = """\
Your data from {site}, exported {when}.

account.json    your account and your API tokens (their names and dates; tokens themselves are never stored)
analyses.json   every analysis: when, what file, the verdict, the model version that gave it, timings
analyses/<id>/  the pictures of each analysis that are still stored: original (unless you chose not to keep it
                or it passed the retention period), thumbnail, heatmap and overlay
"""


def _iso(moment) -> str | None:
    return moment.isoformat() if moment else None


def user_data_export(*, user: User, out) -> int:
    """Write a ZIP of everything stored about the user to the binary file `out`; returns the number of analyses.

    A picture that is already gone (deleted by retention meanwhile) is listed as null; a storage that cannot be
    read stops the export with AccountStorageError rather than hand over an incomplete archive silently.
    """
    now = timezone.now()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        account = {
            "username": user.username,
            "email": user.email,
            "date_joined": _iso(user.date_joined),
            "last_login": _iso(user.last_login),
            "api_tokens": [
                {
                    "name": token.name,
                    "hint": token.hint,
                    "created_at": _iso(token.created_at),
                    "last_used_at": _iso(token.last_used_at),
                    "revoked_at": _iso(token.revoked_at),
                }
                for token in user.api_tokens.order_by("created_at")
            ],
        }
        records = []
        for analysis in analysis_list(user=user).order_by("created_at", "id").iterator(chunk_size=200):
            files = dict.fromkeys(Analysis.PICTURES)
            try:
                for kind, extension, data in analysis_pictures_read(analysis=analysis):
                    files[kind] = f"analyses/{analysis.public_id}/{kind}.{extension}"
                    # Pictures are compressed already; deflating them again only costs time.
                    archive.writestr(files[kind], data, compress_type=zipfile.ZIP_STORED)
            except StorageUnavailable as exc:
                raise AccountStorageError(
                    "Your data could not be exported: the file storage did not answer "
                    f"({exc.__cause__.__class__.__name__}). Nothing was changed; please try again later."
                ) from exc
            records.append({**analysis_export(analysis), "files": files})
        archive.writestr("README.txt", EXPORT_README.format(site=settings.SITE_NAME, when=now.isoformat()))
        archive.writestr("account.json", json.dumps(account, indent=2, ensure_ascii=False))
        archive.writestr("analyses.json", json.dumps(records, indent=2, ensure_ascii=False))
    return len(records)


def user_delete(*, user: User) -> None:
    """Delete the account, its API tokens, all its analyses and every file they own, on whichever storage.

    Files go first, each deletion safe to repeat: if the storage fails half-way, the account stays (with fewer
    pictures) and deleting it again finishes the job, so no file is ever left without a row that names it. The
    rows' own deletion then removes again anything an analysis finishing meanwhile has stored (detection.signals).
    """
    try:
        analysis_files_delete(user=user)
    except StorageUnavailable as exc:
        raise AccountStorageError(
            "Your account could not be deleted yet: the file storage did not answer "
            f"({exc.__cause__.__class__.__name__}). Your account is still here; please try again later."
        ) from exc
    with transaction.atomic():
        user.delete()


def password_reset_limited(*, request, email: str) -> bool:
    """True once this address, or this e-mail, has asked for more reset links than PASSWORD_RESET_RATE allows;
    each request counts, allowed or not."""
    rate = settings.PASSWORD_RESET_RATE
    if rate is None:
        return False
    by_address = is_ratelimited(
        request,
        group="password-reset-address",
        key=lambda group, request: client_ip(request),
        rate=rate,
        increment=True,
    )
    by_email = is_ratelimited(
        request, group="password-reset-email", key=lambda group, request: email.lower(), rate=rate, increment=True
    )
    return by_address or by_email
