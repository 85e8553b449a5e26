"""Notifications: channels (where to), subscriptions (what), events (what happened), deliveries and attempts.

Channel targets (webhook URLs, e-mail addresses) and secrets are credentials: encrypted at rest, never shown
again (the UI shows `target_hint`), never in logs or the audit trail. See `overrides.notifications`.
"""

from django.conf import settings
from django.db import models

from overrides.fields import EncryptedTextField


class EventType(models.TextChoices):
    BUILD_DETECTED = "build.detected", "build.detected: the registry shows a new digest"
    ROLLOUT_SUCCEEDED = "rollout.succeeded", "rollout.succeeded: the cluster runs the build"
    ROLLOUT_FAILED = "rollout.failed", "rollout.failed: the cluster reports an error"
    DOWNLOAD_FAILED = "download.failed", "download.failed: the cluster cannot pull the image"
    BLOCKED = "blocked", "blocked: the module cannot run the build"
    DRIFT_DETECTED = "drift.detected", "drift.detected: the CR was changed outside the portal"
    OVERRIDE_CREATED = "override.created", "override.created"
    OVERRIDE_CHANGED = "override.changed", "override.changed"
    OVERRIDE_DELETED = "override.deleted", "override.deleted"
    OVERRIDE_EXPIRING = "override.expiring", "override.expiring: the expiry is near"
    OVERRIDE_EXPIRED = "override.expired", "override.expired: deleted by the scheduler"
    OVERRIDE_TAKEN_OVER = "override.taken-over", "override.taken-over"


class ChannelKind(models.TextChoices):
    WEBHOOK = "webhook", "Generic webhook (JSON, X-Signature HMAC)"
    SLACK = "slack", "Slack incoming webhook"
    TEAMS = "teams", "Microsoft Teams Workflows webhook"
    EMAIL = "email", "E-mail"


class NotificationChannel(models.Model):
    """Where notifications go. `user` empty: a global channel (admins manage it); else that user's own."""

    name = models.CharField(max_length=100)
    kind = models.CharField(max_length=10, choices=ChannelKind.choices)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE,
                             related_name="notification_channels")
    target = EncryptedTextField(help_text="The webhook URL or the e-mail address (encrypted, never shown again).")
    target_hint = models.CharField(max_length=200, blank=True, default="", help_text="What is shown of the target.")
    secret = EncryptedTextField(blank=True, default="", help_text="HMAC key of a generic webhook (encrypted).")
    own_failures = models.BooleanField(default=True, help_text="Receives the failures of the user's own overrides.")
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_success_at = models.DateTimeField(null=True, blank=True)
    last_failure_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True, default="")
    failures_in_a_row = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["name", "id"]

    def __str__(self) -> str:
        return f"{self.name} ({self.kind})"


class SubscriptionScope(models.TextChoices):
    ALL = "all", "everything"
    SOURCE = "source", "overrides of one source"
    MODULES = "modules", "modules matching patterns"
    MINE = "mine", "overrides I own"


class NotificationSubscription(models.Model):
    """A channel receives `event_types` (empty: all) of the overrides in its scope."""

    channel = models.ForeignKey(NotificationChannel, on_delete=models.CASCADE, related_name="subscriptions")
    event_types = models.JSONField(default=list, blank=True)
    scope = models.CharField(max_length=10, choices=SubscriptionScope.choices, default=SubscriptionScope.ALL)
    source = models.ForeignKey("overrides.ModuleSource", null=True, blank=True, on_delete=models.CASCADE)
    module_patterns = models.CharField(max_length=500, blank=True, default="",
                                       help_text="Shell patterns, comma separated, e.g. echo, team-*.")

    class Meta:
        ordering = ["id"]


class NotificationEvent(models.Model):
    """Something that happened to an override, once. `dedup_key` makes "one build.detected per digest" hold."""

    event_type = models.CharField(max_length=32, choices=EventType.choices, db_index=True)
    override = models.ForeignKey("overrides.ModulePullOverride", null=True, blank=True, on_delete=models.SET_NULL,
                                 related_name="notification_events")
    override_name = models.CharField(max_length=64)
    dedup_key = models.CharField(max_length=200, null=True, blank=True, unique=True)
    payload = models.JSONField(default=dict)
    created_at = models.DateTimeField(db_index=True)
    fanned_out_at = models.DateTimeField(null=True, blank=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["override", "event_type", "-created_at"], name="event_override_type")]

    def __str__(self) -> str:
        return f"{self.event_type} {self.override_name}"


class DeliveryState(models.TextChoices):
    PENDING = "pending", "pending"
    SUCCEEDED = "succeeded", "succeeded"
    FAILED = "failed", "failed"


class Delivery(models.Model):
    """One event to one channel (or, for an owner without a channel, to their e-mail address)."""

    event = models.ForeignKey(NotificationEvent, on_delete=models.CASCADE, related_name="deliveries")
    channel = models.ForeignKey(NotificationChannel, null=True, blank=True, on_delete=models.CASCADE,
                                related_name="deliveries")
    email_to = EncryptedTextField(blank=True, default="")
    state = models.CharField(max_length=10, choices=DeliveryState.choices, default=DeliveryState.PENDING,
                             db_index=True)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True, db_index=True)
    enqueued_at = models.DateTimeField(null=True, blank=True,
                                       help_text="A task was enqueued for the next attempt (its claim clears it).")
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True, default="")

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "deliveries"

    def __str__(self) -> str:
        return f"{self.event} → {self.channel or 'owner e-mail'} ({self.state})"


class DeliveryAttempt(models.Model):
    """One try of a delivery: when, the HTTP status (or none), the error in words, how long it took."""

    delivery = models.ForeignKey(Delivery, on_delete=models.CASCADE, related_name="attempt_log")
    at = models.DateTimeField(db_index=True)
    status_code = models.IntegerField(null=True, blank=True)
    error = models.CharField(max_length=500, blank=True, default="")
    duration_ms = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-at", "-id"]

    def __str__(self) -> str:
        return f"{self.delivery_id} at {self.at:%Y-%m-%d %H:%M:%S}: {self.status_code or self.error}"
