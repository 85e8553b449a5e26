"""API representations. The serializers check shapes and types only; the rules live in the services and
validators (the one place), whose errors the views map to these API field names.

Field names are the custom resources' (camelCase: `imageTag`, `registry.repo`), so a pipeline author can
read the CRD and the API alike. Every field has help_text: it is the schema's documentation.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from overrides import verdict as verdicts
from overrides.models import ModuleSource, Scheme, SyncState
from overrides.selectors import offered_modules
from overrides.validators import DEFAULT_SCAN_INTERVAL
from registry.client import DIGEST_RE

CHANGELOG_HELP = "Why this change is made (e.g. a pipeline URL); kept on the change's audit record."
SECRET_MAX = 65536


def changelog_field() -> serializers.CharField:
    return serializers.CharField(write_only=True, required=False, allow_blank=True, max_length=500,
                                 help_text=CHANGELOG_HELP)


class SyncSerializer(serializers.Serializer):
    state = serializers.ChoiceField(source="sync_state", choices=SyncState.choices, read_only=True,
                                    help_text="pending: waiting to be applied; synced: the cluster has it; error: "
                                              "the last apply failed (retried); off: no cluster configured.")
    message = serializers.CharField(source="sync_message", read_only=True, help_text="What the last apply said.")
    syncedAt = serializers.DateTimeField(source="synced_at", read_only=True, allow_null=True,
                                         help_text="When the current spec was last applied to the cluster (UTC).")


# --- overrides -------------------------------------------------------------------------------------


class OverrideStatusSerializer(serializers.Serializer):
    imageDigest = serializers.CharField(source="status_image_digest", read_only=True,
                                        help_text="The digest the cluster runs (status.imageDigest).")
    message = serializers.CharField(source="status_message", read_only=True,
                                    help_text='The controller\'s message: "Ready", "Download error: …", ….')
    updatedAt = serializers.DateTimeField(source="status_updated_at", read_only=True, allow_null=True,
                                          help_text="Time of the controller's last status write (UTC).")
    weight = serializers.IntegerField(source="status_weight", read_only=True, allow_null=True,
                                      help_text="The module's weight (status.weight).")


class VerdictSerializer(serializers.Serializer):
    state = serializers.ChoiceField(
        choices=list(verdicts.STATES), read_only=True,
        help_text="running: the cluster runs the wanted digest and the module is Ready on it; deploying: the digest "
                  "is reported, the module not Ready on it yet; pending: the registry has a newer digest (renew); "
                  "download-failed / deploy-failed: the controller, the Module or its ModuleConfig reports an "
                  "error; blocked: a gate (module disabled, not found, no source, conflict); sync-off: no cluster; "
                  "unknown: no status yet, the cluster not read lately, or a Module the portal cannot read.")
    summary = serializers.CharField(read_only=True, help_text="The verdict as a short phrase (a badge).")
    reason = serializers.CharField(read_only=True, help_text="The full reason, in the cluster's words.")
    since = serializers.DateTimeField(read_only=True, allow_null=True,
                                      help_text="When the portal first saw this situation (UTC; its own clock).")


class OverrideRegistrySerializer(serializers.Serializer):
    digest = serializers.CharField(source="registry_digest", read_only=True,
                                   help_text="The tag's digest in the registry, as the portal last saw it.")
    checkedAt = serializers.DateTimeField(source="registry_checked_at", read_only=True, allow_null=True,
                                          help_text="When the portal last checked the registry (UTC).")
    error = serializers.CharField(source="registry_error", read_only=True,
                                  help_text="Why the last registry check failed (empty when it succeeded).")
    nextCheckAt = serializers.DateTimeField(source="next_check_at", read_only=True, allow_null=True,
                                            help_text="When the portal checks the registry next (UTC).")


def take_over_field() -> serializers.BooleanField:
    return serializers.BooleanField(source="take_over", default=False, write_only=True,
                                    help_text="Write to someone else's override anyway: you become its owner and "
                                              "the previous owner is notified (without it: 409 with the owner).")


@extend_schema_field({"type": "string", "nullable": True, "example": "3d"})
class ExpiryField(serializers.Field):
    """expiresAt: read as a date and time (null: never, or not claimed); written as an ISO 8601 date and time, a
    duration from now (`3d`, `12h`) or `never`. `overrides.lifetime.resolve_expiry` checks it (the one place)."""

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str) or not data.strip() or len(data) > 64:
            raise serializers.ValidationError("Give an ISO 8601 date and time, a duration such as 7d, or never.")
        return data.strip()

    def to_representation(self, value: Any) -> str | None:
        return serializers.DateTimeField().to_representation(value) if value else None


class ModulePullOverrideSerializer(serializers.Serializer):
    """A ModulePullOverride: the spec a pipeline writes, and what the cluster and registry say about it."""

    name = serializers.CharField(max_length=64, allow_blank=True,
                                 help_text="The module name (metadata.name of the MPO): lowercase letters, digits "
                                           "and -, at most 64 characters.")
    source = serializers.CharField(max_length=253, allow_blank=True,
                                   help_text="Name of the ModuleSource whose registry holds the module's images "
                                             "(required by the portal even where the cluster's API has no "
                                             "spec.source).")
    imageTag = serializers.CharField(source="image_tag", max_length=128, allow_blank=True,
                                     help_text="The image tag to run, e.g. main or pr333.")
    scanInterval = serializers.CharField(source="scan_interval", max_length=32, allow_blank=True,
                                         default=DEFAULT_SCAN_INTERVAL,
                                         help_text="How often the controller checks the tag's digest: h, m and s "
                                                   "in that order, at least 1s (default 15s).")
    rollback = serializers.BooleanField(default=False,
                                        help_text="On deletion, go back to the released version at once "
                                                  "(Deckhouse 1.69+).")
    autoRenew = serializers.BooleanField(source="auto_renew", required=False,
                                         help_text="Renew at once when the portal sees a new build of the tag, so "
                                                   "the cluster pulls it without waiting for its next scan. "
                                                   "Omitted: unchanged (true for a new override).")
    reason = serializers.CharField(max_length=500, required=False, allow_blank=True,
                                   help_text="Why this override exists: free text or a merge-request URL.")
    expiresAt = ExpiryField(source="expires_at", required=False,
                            help_text="When the scheduler deletes the override (null: never, or an imported one "
                                      "nobody claimed). Write a date and time, a duration from now such as 3d, or "
                                      "never (needs the keep-forever permission). Default: now + "
                                      "PORTAL_OVERRIDE_TTL; each upsert or renew by the owner moves it forward.")
    owner = serializers.CharField(source="owner.username", read_only=True, allow_null=True, default=None,
                                  help_text="Who holds the module (null: imported, not claimed).")
    ownedSince = serializers.DateTimeField(source="owned_since", read_only=True, allow_null=True,
                                           help_text="Since when the owner holds it.")
    changelogMessage = changelog_field()
    imageRef = serializers.CharField(source="image_ref", read_only=True,
                                     help_text="<source repo>/<name>:<imageTag>, the image the controller pulls.")
    status = OverrideStatusSerializer(source="*", read_only=True, help_text="The cluster's status of the MPO.")
    registry = OverrideRegistrySerializer(source="*", read_only=True, help_text="The portal's registry view.")
    sync = SyncSerializer(source="*", read_only=True, help_text="Sync of this spec with the cluster.")
    managed = serializers.BooleanField(read_only=True,
                                       help_text="Created in the portal (false: imported from the cluster).")
    createdAt = serializers.DateTimeField(source="created_at", read_only=True, help_text="Created in the portal.")
    updatedAt = serializers.DateTimeField(source="updated_at", read_only=True, help_text="Last saved.")
    verdict = serializers.SerializerMethodField(help_text="Does the cluster run this build? From the MPO, the "
                                                          "Module and its ModuleConfig.")

    @extend_schema_field(VerdictSerializer)
    def get_verdict(self, override) -> dict[str, Any]:
        return VerdictSerializer(verdicts.override_verdict(override)).data


class ModulePullOverrideUpdateSerializer(ModulePullOverrideSerializer):
    """PUT/PATCH body: the name comes from the URL (a body `name` must repeat it)."""

    name = serializers.CharField(max_length=64, required=False, allow_blank=True,
                                 help_text="Optional; when given it must equal the name in the URL.")
    takeOver = take_over_field()


class RenewSerializer(serializers.Serializer):
    force = serializers.BooleanField(default=False,
                                     help_text="Redeploy even when the digest is unchanged "
                                               '(annotation modules.deckhouse.io/renew: "true").')
    takeOver = take_over_field()
    changelogMessage = changelog_field()


# --- sources ---------------------------------------------------------------------------------------


class RegistrySerializer(serializers.Serializer):
    repo = serializers.CharField(max_length=512, allow_blank=True,
                                 help_text="Repository without scheme, e.g. registry.example.com/deckhouse/modules.")
    scheme = serializers.ChoiceField(choices=Scheme.choices, default=Scheme.HTTPS,
                                     help_text="HTTPS (default) or HTTP.")
    dockerCfg = serializers.CharField(source="docker_cfg", write_only=True, required=False, allow_blank=True,
                                      max_length=SECRET_MAX,
                                      help_text="Write-only: base64 of a docker config.json with credentials for "
                                                "the repository's host. Omit to keep the stored credentials; an "
                                                "empty string removes them (anonymous access).")
    ca = serializers.CharField(default="", allow_blank=True, trim_whitespace=False, max_length=SECRET_MAX,
                               help_text="PEM root CA of a registry with a private certificate (empty: none).")


class SourceModuleSerializer(serializers.Serializer):
    name = serializers.CharField(help_text="Module name.")
    discovered = serializers.BooleanField(help_text="Found by the portal among the repository's tags.")
    policy = serializers.CharField(allow_null=True, help_text="Update policy the cluster reports, if any.")
    overridden = serializers.BooleanField(allow_null=True, help_text="The cluster reports an MPO for it.")
    version = serializers.CharField(allow_null=True, help_text="Version the cluster reports, if any.")
    checksum = serializers.CharField(allow_null=True, help_text="Checksum the cluster reports, if any.")
    error = serializers.CharField(allow_null=True, help_text="Error the cluster reports for it, if any.")


class SourceStatusSerializer(serializers.Serializer):
    modulesCount = serializers.IntegerField(source="status_modules_count", read_only=True, allow_null=True,
                                            help_text="status.modulesCount.")
    message = serializers.CharField(source="status_message", read_only=True, help_text="status.message.")
    syncTime = serializers.DateTimeField(source="status_sync_time", read_only=True, allow_null=True,
                                         help_text="status.syncTime: the controller's last pull of the module list.")
    phase = serializers.CharField(source="status_phase", read_only=True, help_text="status.phase: Active, "
                                                                                  "Terminating or empty.")


class DiscoverySerializer(serializers.Serializer):
    checkedAt = serializers.DateTimeField(source="discovered_at", read_only=True, allow_null=True,
                                          help_text="When the portal last listed the repository's tags (UTC).")
    error = serializers.CharField(source="discovery_error", read_only=True,
                                  help_text="Why the last listing failed (empty when it succeeded).")


class ModuleSourceSerializer(serializers.Serializer):
    """A ModuleSource: registry settings (credentials write-only), discovered modules and the cluster status."""

    name = serializers.CharField(max_length=253, allow_blank=True,
                                 help_text="Source name (a Kubernetes object name: lowercase letters, digits, "
                                           "- and .).")
    registry = RegistrySerializer(source="*", help_text="Where the modules' images are (spec.registry).")
    releaseChannel = serializers.CharField(source="release_channel", max_length=64, default="", allow_blank=True,
                                           help_text="spec.releaseChannel (deprecated in Deckhouse).")
    changelogMessage = changelog_field()
    hasCredentials = serializers.BooleanField(source="has_credentials", read_only=True,
                                              help_text="A dockerCfg is stored (it is never shown).")
    builtin = serializers.BooleanField(source="is_builtin", read_only=True,
                                       help_text='The "deckhouse" source belongs to Deckhouse: read-only here.')
    modules = serializers.SerializerMethodField(help_text="Modules the source offers: discovered by the portal "
                                                          "and reported in the cluster's status, merged by name.")
    discovery = DiscoverySerializer(source="*", read_only=True, help_text="The portal's own module discovery.")
    status = SourceStatusSerializer(source="*", read_only=True, help_text="The cluster's status of the source.")
    sync = SyncSerializer(source="*", read_only=True, help_text="Sync of this spec with the cluster.")
    createdAt = serializers.DateTimeField(source="created_at", read_only=True, help_text="Created in the portal.")
    updatedAt = serializers.DateTimeField(source="updated_at", read_only=True, help_text="Last saved.")

    @extend_schema_field(SourceModuleSerializer(many=True))
    def get_modules(self, source: ModuleSource) -> list[dict[str, Any]]:
        def text(value: Any) -> str | None:
            return None if value in (None, "") else str(value)

        return [
            {
                "name": module.name,
                "discovered": module.discovered,
                "policy": text(module.reported.get("policy")),
                "overridden": bool(module.reported.get("overridden")) if module.reported else None,
                "version": text(module.reported.get("version")),
                "checksum": text(module.reported.get("checksum")),
                "error": text(module.reported.get("error")),
            }
            for module in offered_modules(source)
        ]


class ModuleSourceUpdateSerializer(ModuleSourceSerializer):
    name = serializers.CharField(max_length=253, required=False, allow_blank=True,
                                 help_text="Optional; when given it must equal the name in the URL.")


# --- history ---------------------------------------------------------------------------------------


class DigestObservationSerializer(serializers.Serializer):
    digest = serializers.CharField(read_only=True, help_text="The digest seen.")
    previousDigest = serializers.CharField(source="previous_digest", read_only=True,
                                           help_text="The digest seen before it from the same origin (empty: first).")
    imageRef = serializers.CharField(source="image_ref", read_only=True, help_text="The image reference checked.")
    origin = serializers.CharField(read_only=True, help_text="registry: the portal's check; cluster: the controller "
                                                             "reported running it; module: the Module's outcome on "
                                                             "it.")
    observedAt = serializers.DateTimeField(source="observed_at", read_only=True, help_text="When it was seen (UTC).")
    outcome = serializers.CharField(read_only=True, help_text="origin module: ready (the module became Ready on the "
                                                              "digest) or failed; empty for the other origins.")
    reason = serializers.CharField(read_only=True, help_text="origin module, outcome failed: the cluster's reason.")
    renewedAt = serializers.DateTimeField(source="renewed_at", read_only=True, allow_null=True,
                                          help_text="registry origin: when the portal renewed the override for this "
                                                    "digest so the cluster pulled it at once (null: it did not).")


class ObjectChangeSerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True, help_text="Record id.")
    time = serializers.DateTimeField(read_only=True, help_text="When the change was made (UTC).")
    user = serializers.CharField(source="user_name", read_only=True,
                                 help_text="Who made it (the token's owner for API changes; the context for jobs).")
    identity = serializers.CharField(read_only=True, help_text="How the actor proved who they are: the e-mail "
                                     "the identity provider gave (web), or the API token's prefix (api).")
    context = serializers.CharField(read_only=True, help_text="web, api, admin, scheduler, cluster or cli.")
    requestId = serializers.UUIDField(source="request_id", read_only=True, allow_null=True,
                                      help_text="X-Request-ID of the request that made it.")
    action = serializers.CharField(read_only=True, help_text="create, update, delete, renew or import.")
    objectType = serializers.CharField(source="object_type", read_only=True,
                                       help_text="modulepulloverride or modulesource.")
    objectId = serializers.IntegerField(source="object_id", read_only=True, help_text="The object's id.")
    objectName = serializers.CharField(source="object_repr", read_only=True, help_text="The object's name.")
    before = serializers.JSONField(read_only=True, allow_null=True,
                                   help_text="The spec before the change (secrets masked as ***).")
    after = serializers.JSONField(read_only=True, allow_null=True,
                                  help_text="The spec after the change (secrets masked as ***).")
    message = serializers.CharField(read_only=True, help_text="The changelogMessage given with the change.")


# --- errors (schema only) --------------------------------------------------------------------------


class ErrorSerializer(serializers.Serializer):
    detail = serializers.CharField(help_text="What went wrong.")


def validation_error_schema() -> dict[str, Any]:
    """400 bodies: API field name (dotted for nested fields) → messages."""
    return {
        "type": "object",
        "description": "Field name (API spelling, dotted for nested fields, non_field_errors for the body as a "
                       "whole) → messages saying what to change.",
        "additionalProperties": {"type": "array", "items": {"type": "string"}},
    }



# --- rollout ---------------------------------------------------------------------------------------


class RolloutQuerySerializer(serializers.Serializer):
    digest = serializers.RegexField(
        DIGEST_RE.pattern, required=False, allow_blank=True, max_length=100,
        error_messages={"invalid": "Not a digest: expected e.g. sha256:<64 hex digits>."},
        help_text="The digest to wait for; default: the portal's registry digest of the tag, as checked after the "
                  "override's last change or renew.",
    )
    timeout = serializers.IntegerField(min_value=0, default=300,
                                       help_text="Seconds to wait at most (default 300; at most the server's "
                                                 "PORTAL_ROLLOUT_MAX_TIMEOUT, 600 unless set otherwise).")

    def validate_timeout(self, value: int) -> int:
        longest = settings.PORTAL_ROLLOUT_MAX_TIMEOUT
        if value > longest:
            raise serializers.ValidationError(f"At most {longest:g} seconds here (PORTAL_ROLLOUT_MAX_TIMEOUT).")
        return value


class RolloutSerializer(serializers.Serializer):
    state = serializers.ChoiceField(
        choices=["rolled-out", "timeout", "failed", "sync-off", "deleted"], read_only=True,
        help_text="rolled-out: the verdict is running on the wanted digest; failed: the verdict is download-failed, "
                  "deploy-failed or blocked about this image (reported after the current spec or renew was "
                  "applied); sync-off: no cluster configured; deleted: the override was deleted; timeout: none of "
                  "these in time (the verdict says where it stands).",
    )
    detail = serializers.CharField(read_only=True, help_text="The outcome in words, for the pipeline's log.")
    name = serializers.CharField(source="override.name", read_only=True, help_text="The override (module) name.")
    wanted = serializers.CharField(read_only=True, allow_null=True,
                                   help_text="The digest waited for (null: not known yet).")
    cluster = OverrideStatusSerializer(source="override", read_only=True,
                                       help_text="The cluster's status of the MPO at the end of the wait.")
    registry = OverrideRegistrySerializer(source="override", read_only=True, help_text="The portal's registry view.")
    sync = SyncSerializer(source="override", read_only=True, help_text="Sync of the spec with the cluster.")
    waitedSeconds = serializers.FloatField(source="waited", read_only=True, help_text="How long the server waited.")
    verdict = VerdictSerializer(read_only=True, allow_null=True, help_text="The override's verdict at the end of the "
                                                                           "wait.")
    modulePhase = serializers.CharField(source="module_phase", read_only=True,
                                        help_text="The Module's phase (v1alpha1 status.phase, v1beta1 "
                                                  "status.summary.state); empty when no Module was read.")
