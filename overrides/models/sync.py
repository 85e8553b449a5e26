"""What every cluster-mirrored object shares: the desired-state version and its sync state with the cluster."""

from django.db import models


class SyncState(models.TextChoices):
    PENDING = "pending", "pending"
    SYNCED = "synced", "synced"
    ERROR = "error", "error"
    OFF = "off", "off"


class ClusterMirrored(models.Model):
    """Level-triggered sync bookkeeping (see design.md, "Apply").

    `spec_version` moves on every accepted change of the desired state (spec, renew, deletion); the apply
    task makes the custom resource match the row as it is *now* and records the version it applied, so a
    change that lands while an apply runs is never lost: the row stays pending until both versions agree.
    """

    spec_version = models.PositiveIntegerField(default=1, help_text="Bumped on every change of the desired state.")
    applied_version = models.PositiveIntegerField(default=0, help_text="The spec_version last applied to the cluster.")
    sync_state = models.CharField(max_length=10, choices=SyncState.choices, default=SyncState.PENDING, db_index=True)
    sync_message = models.TextField(blank=True, default="")
    synced_at = models.DateTimeField(null=True, blank=True)
    sync_attempts = models.PositiveIntegerField(default=0)
    next_sync_at = models.DateTimeField(null=True, blank=True, db_index=True)
    # The cluster's view of the object, kept to detect drift and deletion.
    cluster_uid = models.CharField(max_length=64, blank=True, default="")
    cluster_resource_version = models.CharField(max_length=64, blank=True, default="")
    cluster_seen_at = models.DateTimeField(null=True, blank=True)
    managed = models.BooleanField(default=True, help_text="Created by the portal (False: imported from the cluster).")
    deleted_at = models.DateTimeField(
        null=True, blank=True, db_index=True, help_text="Deleted in the portal or in the cluster; kept for history."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True

    @property
    def is_deleted(self) -> bool:
        return self.deleted_at is not None

    def bump_spec_version(self) -> None:
        """A new desired state: the version the apply loop compares `applied_version` with moves on."""
        self.spec_version = (self.spec_version or 0) + 1 if self.pk else 1


class LiveManager(models.Manager):
    """The default manager hides deleted rows; `all_objects` shows them (admin, history, sync)."""

    def get_queryset(self):
        return super().get_queryset().filter(deleted_at__isnull=True)
