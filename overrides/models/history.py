"""The two audit trails: image digests seen, and who changed what."""

from django.conf import settings
from django.db import models


class DigestOrigin(models.TextChoices):
    REGISTRY = "registry", "registry"
    CLUSTER = "cluster", "cluster"
    MODULE = "module", "module"


class DigestObservation(models.Model):
    """A digest seen for an override's image: the first one, and every change after it.

    Origin `registry` comes from the portal's own checks; `cluster` from the controller's
    `status.imageDigest` (what the cluster runs); `module` when the Module became Ready on that digest
    (`outcome` ready) or failed on it (`outcome` failed, with `reason`). Rows are written once; only
    `renewed_at` is filled in later.
    """

    override = models.ForeignKey("overrides.ModulePullOverride", on_delete=models.CASCADE, related_name="digests")
    digest = models.CharField(max_length=100)
    previous_digest = models.CharField(max_length=100, blank=True, default="")
    image_ref = models.CharField(max_length=700)
    origin = models.CharField(max_length=10, choices=DigestOrigin.choices)
    observed_at = models.DateTimeField(db_index=True)
    # When the portal renewed the override for this (registry) digest, so the cluster pulled it at once.
    renewed_at = models.DateTimeField(null=True, blank=True)
    outcome = models.CharField(max_length=10, blank=True, default="", db_default="",
                               help_text="module origin: ready or failed.")
    reason = models.TextField(blank=True, default="", db_default="", help_text="module origin, failed: the reason.")

    class Meta:
        ordering = ["-observed_at", "-id"]
        indexes = [models.Index(fields=["override", "origin", "-observed_at"], name="digest_override_time")]

    def __str__(self) -> str:
        return f"{self.image_ref}@{self.digest} ({self.origin})"


class ChangeContext(models.TextChoices):
    WEB = "web", "web"
    API = "api", "api"
    ADMIN = "admin", "admin"
    SCHEDULER = "scheduler", "scheduler"
    CLUSTER = "cluster", "cluster"
    CLI = "cli", "cli"


class ChangeAction(models.TextChoices):
    CREATE = "create", "create"
    UPDATE = "update", "update"
    DELETE = "delete", "delete"
    RENEW = "renew", "renew"
    IMPORT = "import", "import"
    CLAIM = "claim", "claim"
    TAKE_OVER = "take-over", "take over"


class ObjectChange(models.Model):
    """One change of one object, written by the service that made it (NetBox's ObjectChange).

    The actor's name is copied so the record survives the user's deletion; snapshots never hold a secret
    (`***` stands for a set credential).
    """

    time = models.DateTimeField(auto_now_add=True, db_index=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    user_name = models.CharField(max_length=150, blank=True, default="")
    identity = models.CharField(max_length=255, blank=True, default="",
                                help_text="Who the actor was, as proven: the provider's e-mail for web changes, the "
                                          "token prefix for API changes.")
    context = models.CharField(max_length=10, choices=ChangeContext.choices)
    request_id = models.UUIDField(null=True, blank=True, db_index=True)
    action = models.CharField(max_length=10, choices=ChangeAction.choices)
    object_type = models.CharField(max_length=32, db_index=True)
    object_id = models.BigIntegerField(db_index=True)
    object_repr = models.CharField(max_length=255)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    message = models.CharField(max_length=500, blank=True, default="")

    class Meta:
        ordering = ["-time", "-id"]
        indexes = [models.Index(fields=["object_type", "object_id", "-time"], name="change_object_time")]

    def __str__(self) -> str:
        return f"{self.action} {self.object_type} {self.object_repr} by {self.user_name or self.context}"
