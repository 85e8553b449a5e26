"""Named leases: "only one process does this at a time", held by a token until an expiry.

A row is changed only by compare-and-swap `UPDATE`s (see `DispatcherLease` in overrides.polling), never by `save()`
on a row read earlier, so `updated_at` is set explicitly by those updates rather than by `auto_now`.
"""

from django.db import models
from django.utils import timezone


class Lease(models.Model):
    """One lease. `holder` is the holding process's token ("" when free) and holds it until `expires_at` unless it
    is renewed; `successor` is the token of a process waiting for the holder to hand it over; `state` is what one
    holder hands to the next (JSON)."""

    name = models.CharField(max_length=100, unique=True)
    holder = models.CharField(max_length=200, blank=True, default="")
    expires_at = models.DateTimeField(default=timezone.now)
    successor = models.CharField(max_length=200, blank=True, default="")
    state = models.JSONField(default=dict, blank=True)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def is_held(self) -> bool:
        return bool(self.holder) and self.expires_at > timezone.now()
