"""EncryptedTextField: registry credentials encrypted at rest with Fernet (Pulp's approach).

The first key of PORTAL_ENCRYPTION_KEYS encrypts, every key decrypts, so keys rotate without downtime:
prepend a new key, run `manage.py rotate_encryption_keys`, then drop the old one.
"""

from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import models
from django.views.decorators.debug import sensitive_variables


@lru_cache(maxsize=4)
@sensitive_variables()  # keys
def _fernet(keys: tuple[str, ...]) -> MultiFernet:
    try:
        return MultiFernet([Fernet(k) for k in keys])
    except ValueError:
        raise ImproperlyConfigured(
            "PORTAL_ENCRYPTION_KEYS must be Fernet keys (generate one with "
            "`python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'`)."
        ) from None


@sensitive_variables()
def fernet() -> MultiFernet:
    return _fernet(tuple(settings.PORTAL_ENCRYPTION_KEYS))


@sensitive_variables()
def encrypt(value: str) -> str:
    return fernet().encrypt(value.encode()).decode()


@sensitive_variables()
def decrypt(token: str) -> str:
    try:
        return fernet().decrypt(token.encode()).decode()
    except InvalidToken:
        raise ImproperlyConfigured(
            "A stored credential cannot be decrypted with PORTAL_ENCRYPTION_KEYS: the key that encrypted it "
            "is missing from the list."
        ) from None


class EncryptedTextField(models.TextField):
    """Holds plaintext in Python, Fernet ciphertext in the database; "" stays "" (no credential)."""

    @sensitive_variables("value")
    def from_db_value(self, value, expression, connection):
        if not value:
            return ""
        return decrypt(value)

    @sensitive_variables("value")
    def get_prep_value(self, value):
        value = super().get_prep_value(value)
        if not value:
            return ""
        return encrypt(value)
