"""ModulePullOverride: "run the image of my branch", mirrored from `modulepulloverrides.deckhouse.io`."""


from django.conf import settings
from django.db import models

from overrides import validators

from .sources import ModuleSource
from .sync import ClusterMirrored, LiveManager


class ModulePullOverride(ClusterMirrored):
    """An MPO: its spec, the cluster's status, the portal's own registry view and its sync state.

    The name is the module name (the only link between an MPO and its module). Deleted rows are kept
    (`deleted_at`) so their digest history and audit stay browsable; creating the name again revives the row.
    """

    name = models.CharField(max_length=64, unique=True, validators=[validators.validate_module_name])
    source = models.ForeignKey(ModuleSource, on_delete=models.PROTECT, related_name="overrides")
    image_tag = models.CharField(max_length=128, validators=[validators.validate_image_tag])
    scan_interval = models.CharField(
        max_length=32, default=validators.DEFAULT_SCAN_INTERVAL, validators=[validators.validate_scan_interval]
    )
    rollback = models.BooleanField(
        default=False, help_text="On deletion, go back to the released version at once (Deckhouse 1.69+)."
    )
    # Renew is desired state too: the apply writes `renew=<renew_requested_at>` (and the forced annotation).
    renew_requested_at = models.DateTimeField(null=True, blank=True)
    renew_force = models.BooleanField(default=False)
    # Auto-renew: when the portal sees a new digest the cluster does not run yet, it renews the override once
    # (see overrides.polling.auto_renew). The switch is the user's; the rest is bookkeeping.
    auto_renew = models.BooleanField(
        default=True, help_text="Renew at once when the portal sees a new build of the tag (PORTAL_AUTO_RENEW)."
    )
    auto_renew_at = models.DateTimeField(null=True, blank=True, db_index=True)
    auto_renewed_digest = models.CharField(max_length=100, blank=True, default="")
    auto_renewed_at = models.DateTimeField(null=True, blank=True)

    # Lifetime and ownership (overrides.lifetime): who holds the module, why, and until when. Not cluster state.
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                              related_name="owned_overrides", help_text="Empty: imported and not claimed yet.")
    owned_since = models.DateTimeField(null=True, blank=True)
    reason = models.CharField(max_length=500, blank=True, default="", help_text="Why: free text or an MR URL.")
    expires_at = models.DateTimeField(null=True, blank=True, db_index=True,
                                      help_text="Deleted by the scheduler then; empty: never (or not claimed).")
    reminded_at = models.DateTimeField(null=True, blank=True, help_text="The expiry reminder was sent then.")

    # The cluster's status (written by the Deckhouse controller, mirrored here).
    status_image_digest = models.CharField(max_length=100, blank=True, default="")
    status_message = models.TextField(blank=True, default="")
    status_updated_at = models.DateTimeField(null=True, blank=True)
    status_weight = models.IntegerField(null=True, blank=True)

    # The portal's own registry view (bookkeeping: written with queryset.update(), never audited).
    registry_digest = models.CharField(max_length=100, blank=True, default="")
    registry_checked_at = models.DateTimeField(null=True, blank=True)
    registry_error = models.TextField(blank=True, default="")
    next_check_at = models.DateTimeField(null=True, blank=True, db_index=True)
    check_failures = models.PositiveIntegerField(default=0)

    objects = LiveManager()
    all_objects = models.Manager()

    class Meta:
        ordering = ["name"]
        base_manager_name = "all_objects"
        verbose_name = "module pull override"
        permissions = [("keep_override_forever", "Can keep an override without expiry")]

    def __str__(self) -> str:
        return self.name

    @property
    def image_ref(self) -> str:
        from registry.client import image_reference

        return image_reference(self.source.repo, self.name, self.image_tag)

    def reset_registry_view(self) -> None:
        """A new image reference: the portal's registry check starts over at once, forgetting the old one's error
        and backoff (the web, the API and a change taken over from the cluster alike)."""
        from django.utils import timezone

        self.next_check_at = timezone.now()
        self.registry_error = ""
        self.check_failures = 0
