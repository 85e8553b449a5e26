"""Fixtures and helpers shared by the tests/test_api_*.py modules (import them with `from … import *`)."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission
from rest_framework.test import APIClient

from overrides.models import ApiToken, ObjectChange

API_PERMS = [
    f"{action}_{model}"
    for model in ("modulepulloverride", "modulesource")
    for action in ("view", "add", "change", "delete")
] + ["view_objectchange"]


def make_token(user, *, write: bool = True, expires_at=None) -> str:
    plaintext = ApiToken.generate()
    token = ApiToken(user=user, write_enabled=write, expires_at=expires_at, description="tests")
    token.set_key(plaintext)
    token.save()
    return plaintext


def client_with(token: str | None) -> APIClient:
    client = APIClient()
    if token:
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


def changes(obj) -> list[ObjectChange]:
    return list(ObjectChange.objects.filter(object_type=obj._meta.model_name, object_id=obj.pk).order_by("id"))


@pytest.fixture
def ci_user(django_user_model):
    """A pipeline's user: the model permissions of the API, not a superuser."""
    user = django_user_model.objects.create_user(username="ci-bot", password="unused-pass-123")
    user.user_permissions.set(Permission.objects.filter(content_type__app_label="overrides", codename__in=API_PERMS))
    return user


@pytest.fixture
def api(ci_user) -> APIClient:
    """A client with a write token of `ci_user`."""
    return client_with(make_token(ci_user))


def assert_api_audit(change: ObjectChange, response, *, action: str, message: str = "") -> None:
    """An API write's audit record: the token's owner, context api, the response's request id, the message."""
    assert change.action == action
    assert change.context == "api" and change.user_name == "ci-bot" and change.user is not None
    assert str(change.request_id) == response["X-Request-ID"]
    assert change.message == message
