"""The overridden module as the cluster runs it: its `Module` and `ModuleConfig`, mirrored by the read-back."""

from django.db import models

from .pulloverrides import ModulePullOverride


class ModuleHealth(models.TextChoices):
    """The Module's state, normalized over both API versions (v1alpha1 `status.phase`, v1beta1 `summary.state`)."""

    READY = "ready", "ready"
    RECONCILING = "reconciling", "reconciling"
    FAILED = "failed", "failed"
    DISABLED = "disabled", "disabled"
    CONFLICT = "conflict", "conflict"
    UNKNOWN = "unknown", "unknown"


class ClusterModule(models.Model):
    """The `Module` (and `ModuleConfig`) of one overridden module, and the times the portal saw things happen.

    Written only by the read-back, as bookkeeping (no audit). The cluster's own times are kept as they are
    (`ready_condition_at`); every `*_seen_at` is the portal's clock: when the read-back first saw that value.
    `problems` lists what the Module lacked or held in a shape the portal does not know: the verdict is then
    `unknown`, never `running`.
    """

    override = models.OneToOneField(ModulePullOverride, on_delete=models.CASCADE, related_name="cluster_module")
    # The MPO's reported digest and message, with when the portal first saw each (never MPO `updatedAt`).
    digest = models.CharField(max_length=100, blank=True, default="")
    digest_seen_at = models.DateTimeField(null=True, blank=True)
    digest_reported_at = models.DateTimeField(null=True, blank=True, help_text="MPO updatedAt when first seen.")
    message = models.TextField(blank=True, default="")
    message_seen_at = models.DateTimeField(null=True, blank=True)
    # The Module object ("" api_version: none seen).
    api_version = models.CharField(max_length=16, blank=True, default="")
    health = models.CharField(max_length=16, choices=ModuleHealth.choices, blank=True, default="")
    health_seen_at = models.DateTimeField(null=True, blank=True)
    phase = models.CharField(max_length=32, blank=True, default="", help_text="v1alpha1 status.phase or v1beta1 "
                                                                              "status.summary.state.")
    reason = models.TextField(blank=True, default="", help_text="Why it is in that phase, in the cluster's words.")
    tip = models.TextField(blank=True, default="")
    conditions = models.JSONField(default=list, blank=True)
    hooks_state = models.TextField(blank=True, default="")
    ready_condition_at = models.DateTimeField(null=True, blank=True, help_text="lastTransitionTime of the ready "
                                                                               "condition (the cluster's clock).")
    runtime_digest = models.CharField(max_length=100, blank=True, default="",
                                      help_text="v1beta1 annotation modules.deckhouse.io/hash.")
    module_source = models.CharField(max_length=253, blank=True, default="")
    module_version = models.CharField(max_length=200, blank=True, default="")
    problems = models.JSONField(default=list, blank=True)
    # The ModuleConfig ("Error: ..." = settings invalid).
    config_message = models.TextField(blank=True, default="")
    config_message_seen_at = models.DateTimeField(null=True, blank=True)
    config_enabled = models.BooleanField(null=True, blank=True)
    # The module's outcome on a digest, as first seen by the portal.
    ready_digest = models.CharField(max_length=100, blank=True, default="")
    ready_at = models.DateTimeField(null=True, blank=True)
    failed_digest = models.CharField(max_length=100, blank=True, default="")
    failed_at = models.DateTimeField(null=True, blank=True)
    failure = models.TextField(blank=True, default="")
    read_at = models.DateTimeField(null=True, blank=True, help_text="The read-back that last wrote this row.")
    observed = models.CharField(max_length=200, blank=True, default="",
                                help_text="What the row was computed from (resourceVersions, digest, message): an "
                                          "unchanged value lets a read-back skip the row.")

    class Meta:
        verbose_name = "cluster module"

    def __str__(self) -> str:
        return f"{self.override_id}: {self.phase or 'no Module'}"
