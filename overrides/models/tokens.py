"""API tokens for CI pipelines (NetBox v2 style): stored only as a hash, shown once."""

import hashlib
import secrets

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone

TOKEN_PREFIX = "mpo_"


def hash_token(plaintext: str) -> str:
    """Tokens are 256-bit random values, so one SHA-256 is enough (no slow KDF needed per request)."""
    return hashlib.sha256(plaintext.encode()).hexdigest()


class ApiToken(models.Model):
    """A bearer token of a user: read-only or write, optional expiry, last-used time."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    description = models.CharField(max_length=200, blank=True, default="")
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    key_hint = models.CharField(max_length=12, editable=False, help_text="The first characters, to tell tokens apart.")
    write_enabled = models.BooleanField(default=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "API token"

    def __str__(self) -> str:
        return f"{self.key_hint}… ({self.user})"

    @classmethod
    def from_db(cls, db, field_names, values):
        token = super().from_db(db, field_names, values)
        token._stored_user_id = token.__dict__.get("user_id")
        return token

    def save(self, *args, **kwargs) -> None:
        """A token acts as its user: moving it to another user would hand that user's rights to its holder."""
        stored = getattr(self, "_stored_user_id", None)
        if self.pk is not None and stored is not None and self.user_id != stored:
            raise ValidationError({"user": "A token's user cannot change: revoke it and create one for the other "
                                           "user."})
        super().save(*args, **kwargs)
        self._stored_user_id = self.user_id

    @staticmethod
    def generate() -> str:
        return TOKEN_PREFIX + secrets.token_urlsafe(32)

    def set_key(self, plaintext: str) -> None:
        self.key_hash = hash_token(plaintext)
        self.key_hint = plaintext[:8]

    @property
    def is_expired(self) -> bool:
        return self.expires_at is not None and self.expires_at <= timezone.now()
