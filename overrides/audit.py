"""Who is acting, and the one function that writes an audit record (NetBox's change logging, explicit)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from django.contrib.auth.models import AnonymousUser

from overrides.models import ApiToken, ChangeContext, ModulePullOverride, ModuleSource, ObjectChange

SECRET_MASK = "***"
SECRET_REPLACED = f"{SECRET_MASK} (replaced)"
# Snapshot keys (flattened) in the order the CR lists them: summaries and diffs follow it, since JSON columns do not
# keep key order on every database (jsonb sorts). `snapshot()` builds its dicts in this order too.
FIELD_ORDER = ("name", "source", "imageTag", "scanInterval", "rollback", "autoRenew", "registry.repo",
               "registry.scheme", "registry.dockerCfg", "registry.ca", "releaseChannel", "deleted")


@dataclass(frozen=True)
class Actor:
    """The user (or token owner) behind a change, where it came from, and the request id."""

    context: str
    user: Any = None
    request_id: uuid.UUID | None = None
    token: Any = None  # the ApiToken of an API request

    @property
    def identity(self) -> str:
        """How the actor proved who they are: "token mpo_AbCd…" for API tokens, else the user's e-mail (the one
        the identity provider gave at sign-in)."""
        if self.token is not None:
            return f"token {self.token.key_hint}…"
        return (getattr(self.user, "email", "") or "") if self.user is not None else ""

    @property
    def name(self) -> str:
        if self.user is not None and getattr(self.user, "is_authenticated", False):
            return self.user.get_username()
        return self.context

    @classmethod
    def system(cls, context: str) -> Actor:
        """The scheduler, the cluster read-back or a command without a user."""
        return cls(context=context)

    @classmethod
    def from_request(cls, request, context: str = ChangeContext.WEB) -> Actor:
        user = getattr(request, "user", None)
        if isinstance(user, AnonymousUser):
            user = None
        token = getattr(request, "auth", None)
        return cls(context=context, user=user, request_id=getattr(request, "id", None),
                   token=token if isinstance(token, ApiToken) else None)


def snapshot(obj) -> dict[str, Any]:
    """The audited state of an object: its spec as the CR names it, secrets masked."""
    if isinstance(obj, ModulePullOverride):
        return {
            "name": obj.name,
            "source": obj.source.name if obj.source_id else None,
            "imageTag": obj.image_tag,
            "scanInterval": obj.scan_interval,
            "rollback": obj.rollback,
            "autoRenew": obj.auto_renew,
            "deleted": obj.deleted_at is not None,
        }
    if isinstance(obj, ModuleSource):
        return {
            "name": obj.name,
            "registry": {
                "repo": obj.repo,
                "scheme": obj.scheme,
                "dockerCfg": SECRET_MASK if obj.docker_cfg else "",
                "ca": obj.ca,
            },
            "releaseChannel": obj.release_channel,
            "deleted": obj.deleted_at is not None,
        }
    raise TypeError(f"no audit snapshot for {type(obj).__name__}")


def source_change_after(source: ModuleSource, before: dict[str, Any], old_docker_cfg: str) -> dict[str, Any]:
    """The after-snapshot of a source change. When the credential was replaced by another and nothing else
    changed, the masks are equal: say that it was replaced, without showing either."""
    after = snapshot(source)
    if source.docker_cfg != old_docker_cfg and after == before:
        after = {**after, "registry": {**after["registry"], "dockerCfg": SECRET_REPLACED}}
    return after


def in_field_order(keys) -> list[str]:
    """Flattened snapshot keys in `FIELD_ORDER` (unknown keys last, alphabetically)."""
    return sorted(keys, key=lambda k: (FIELD_ORDER.index(k) if k in FIELD_ORDER else len(FIELD_ORDER), k))


def record_change(
    *,
    actor: Actor,
    action: str,
    obj,
    before: dict | None,
    after: dict | None,
    message: str = "",
    force: bool = False,
) -> ObjectChange | None:
    """Write one audit row, or none when nothing changed (unless `force`, for actions such as renew)."""
    if before == after and not force:
        return None
    user = actor.user if actor.user is not None and getattr(actor.user, "pk", None) else None
    return ObjectChange.objects.create(
        user=user,
        user_name=actor.name,
        identity=actor.identity[:255],
        context=actor.context,
        request_id=actor.request_id,
        action=action,
        object_type=obj._meta.model_name,
        object_id=obj.pk,
        object_repr=str(obj)[:255],
        before=before,
        after=after,
        message=(message or "")[:500],
    )
