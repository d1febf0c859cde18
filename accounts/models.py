import hashlib

from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.db import models
from django.db.models.functions import Lower
from django.utils import timezone
from django.utils.crypto import salted_hmac

SESSION_HASH_SALT = "accounts.User.get_session_auth_hash"


class User(AbstractUser):
    """The project's user; custom from the first migration so fields can be added without a painful swap later."""

    email = models.EmailField("e-mail address", blank=True)
    # Part of every session's check: raising it signs the user out of every session at once.
    session_generation = models.PositiveIntegerField(default=0, editable=False)

    class Meta(AbstractUser.Meta):
        constraints = [
            # A password reset mails the one account with the address, whatever its case.
            models.UniqueConstraint(Lower("email"), condition=~models.Q(email=""), name="unique_email_case_insensitive")
        ]

    def save(self, *args, **kwargs):
        password_changed = self._password is not None and self.pk is not None
        super().save(*args, **kwargs)
        if password_changed:  # changed or reset, by the user, a reset link or an administrator
            self.api_tokens_revoke()

    def api_tokens_revoke(self) -> int:
        """Revoke every active API token; returns how many there were."""
        return self.api_tokens.filter(revoked_at__isnull=True).update(revoked_at=timezone.now())

    def sign_out_everywhere(self) -> None:
        """End every session of this user, on every device, and revoke every API token."""
        User.objects.filter(pk=self.pk).update(session_generation=models.F("session_generation") + 1)
        self.refresh_from_db(fields=["session_generation"])
        self.api_tokens_revoke()

    def get_session_auth_hash(self) -> str:
        return self._session_hash(settings.SECRET_KEY)

    def get_session_auth_fallback_hash(self):
        for secret in settings.SECRET_KEY_FALLBACKS:
            yield self._session_hash(secret)

    def _session_hash(self, secret: str) -> str:
        value = f"{self.password}:{self.session_generation}"
        return salted_hmac(SESSION_HASH_SALT, value, secret=secret, algorithm="sha256").hexdigest()


def api_token_hash(raw_token: str) -> str:
    # Tokens are 256 random bits, so a fast hash is enough: there is nothing to brute-force.
    return hashlib.sha256(raw_token.encode()).hexdigest()


class ApiToken(models.Model):
    """A personal API token. Only its hash is stored; the plain token is shown once, when it is created."""

    PREFIX = "dfd_"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100)
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    # The first characters of the token, so a person can tell their tokens apart without the secret.
    hint = models.CharField(max_length=12, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["user", "name"],
                condition=models.Q(revoked_at__isnull=True),
                name="unique_active_token_name_per_user",
            )
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.hint}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None
