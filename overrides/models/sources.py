"""ModuleSource: a registry of Deckhouse modules, mirrored from `modulesources.deckhouse.io`."""

from django.core.exceptions import ValidationError
from django.db import models

from overrides import validators
from overrides.fields import EncryptedTextField

from .sync import ClusterMirrored, LiveManager

BUILTIN_SOURCE = "deckhouse"


class Scheme(models.TextChoices):
    HTTPS = "HTTPS", "HTTPS"
    HTTP = "HTTP", "HTTP"


class ModuleSource(ClusterMirrored):
    """A ModuleSource: spec (`registry.repo/scheme/dockerCfg/ca`, `releaseChannel`), the cluster's status, and
    the modules the portal discovered itself by listing the tags of the repository."""

    name = models.CharField(max_length=253, unique=True, validators=[validators.validate_source_name])
    repo = models.CharField(
        max_length=512, validators=[validators.validate_repo],
        help_text="Registry repository without scheme, e.g. registry.example.com/deckhouse/modules.",
    )
    scheme = models.CharField(max_length=5, choices=Scheme.choices, default=Scheme.HTTPS)
    docker_cfg = EncryptedTextField(
        blank=True, default="", help_text="Base64 of a docker config.json with credentials; empty = anonymous."
    )
    ca = models.TextField(blank=True, default="", validators=[validators.validate_ca], help_text="PEM root CA.")
    release_channel = models.CharField(max_length=64, blank=True, default="", help_text="Deprecated in Deckhouse.")

    # The cluster's status (written by the Deckhouse controller, mirrored here).
    status_modules = models.JSONField(
        default=list, blank=True,
        help_text="[{name, policy, overridden, version, checksum, error}], normalized from either status shape.",
    )
    status_modules_count = models.PositiveIntegerField(null=True, blank=True)
    status_message = models.TextField(blank=True, default="")
    status_sync_time = models.DateTimeField(null=True, blank=True)
    status_phase = models.CharField(max_length=32, blank=True, default="")

    # The portal's own discovery (tags of the repo).
    discovered_modules = models.JSONField(default=list, blank=True)
    discovered_at = models.DateTimeField(null=True, blank=True)
    discovery_error = models.TextField(blank=True, default="")
    next_discovery_at = models.DateTimeField(null=True, blank=True, db_index=True)

    objects = LiveManager()
    all_objects = models.Manager()

    class Meta:
        ordering = ["name"]
        base_manager_name = "all_objects"

    def __str__(self) -> str:
        return self.name

    @property
    def is_builtin(self) -> bool:
        """The `deckhouse` source belongs to Deckhouse: shown, never edited or deleted."""
        return self.name == BUILTIN_SOURCE

    @property
    def has_credentials(self) -> bool:
        return bool(self.docker_cfg)

    def clean(self) -> None:
        super().clean()
        if self.repo and self.docker_cfg:
            try:
                validators.validate_docker_cfg(self.docker_cfg, self.repo)
            except ValidationError as exc:
                raise ValidationError({"docker_cfg": exc.messages}) from None
