"""Cluster objects the read-back refused to import, kept so an admin can see (and fix) them."""

from django.db import models


class SkippedClusterObject(models.Model):
    """A ModulePullOverride or ModuleSource in the cluster that breaks the portal's rules (a name that is not a
    module name, an unusable imageTag or repo...) or cannot be placed (no known source), so the read-back left it
    out. One row per object: written when the read-back first meets it (and logged then, once), its reason
    refreshed when it changes, removed when the object is fixed (and imported) or deleted in the cluster.
    Bookkeeping of the read-back, not a portal change: no audit row."""

    kind = models.CharField(max_length=32, help_text="ModulePullOverride or ModuleSource.")
    name = models.CharField(max_length=253, help_text="metadata.name in the cluster.")
    reason = models.TextField(help_text="Why the portal did not import it, and what to fix.")
    first_seen_at = models.DateTimeField(help_text="When the read-back first skipped it.")
    last_seen_at = models.DateTimeField(help_text="The latest read-back that skipped it.")

    class Meta:
        ordering = ["kind", "name"]
        constraints = [models.UniqueConstraint(fields=["kind", "name"], name="skipped_cluster_object_unique")]
        verbose_name = "object skipped from the cluster"
        verbose_name_plural = "objects skipped from the cluster"

    def __str__(self) -> str:
        return f"{self.kind} {self.name}"
