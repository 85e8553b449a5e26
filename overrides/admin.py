"""The Django admin: every model browsable; edits go through the services (audit context "admin").

Credentials are never shown: a set / not set indicator and a write-only replace field. Digest history, the
audit trail and the dispatcher lease are read-only for everyone, superusers included.
"""

from datetime import timedelta

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.decorators import method_decorator
from django.utils.html import format_html
from django.views.decorators.debug import sensitive_post_parameters, sensitive_variables

from overrides import services
from overrides.audit import Actor
from overrides.forms import apply_service_errors
from overrides.identity import admin as identity_admin  # noqa: F401 - registers groups and module scopes
from overrides.models import (
    ApiToken,
    ChangeContext,
    Delivery,
    DeliveryAttempt,
    DigestObservation,
    Lease,
    ModulePullOverride,
    ModuleSource,
    NotificationChannel,
    NotificationEvent,
    ObjectChange,
    SkippedClusterObject,
)
from overrides.tokens import token_create, token_revoke
from overrides.views.paging import BoundedCountPaginator


def _actor(request) -> Actor:
    return Actor.from_request(request, context=ChangeContext.ADMIN)


class ServiceAdmin(admin.ModelAdmin):
    """Routes save and delete through the service layer.

    The service call is the form's last validation step (`get_form`): a refused add or change stays on the form
    with the service's words next to the field, and nothing is saved, since Django's "added"/"changed" path only
    runs for a valid form. `save_model` then only hands Django the row the service saved. A refused delete is
    shown as a message.
    """

    service_error_fields: dict[str, str] = {}  # service (model) field name -> the form field showing its error

    def service_save(self, request, obj, data: dict, change: bool):
        raise NotImplementedError

    def get_form(self, request, obj=None, change=False, **kwargs):
        base = super().get_form(request, obj, change, **kwargs)
        model_admin = self

        class ServiceForm(base):
            saved = None

            def _post_clean(self):
                super()._post_clean()
                if self.errors:
                    return
                try:
                    with transaction.atomic():
                        self.saved = model_admin.service_save(request, self.instance, self.cleaned_data, change)
                except ValidationError as exc:
                    apply_service_errors(self, exc, model_admin.service_error_fields)
                except PermissionDenied as exc:  # e.g. outside the user's module scope: the rule, on the form
                    self.add_error(None, str(exc))

        ServiceForm.__name__ = base.__name__
        return ServiceForm

    def save_model(self, request, obj, form, change):
        obj.pk = form.saved.pk

    def get_queryset(self, request):
        return self.model.all_objects.all()

    def has_change_permission(self, request, obj=None):
        if obj is not None and (obj.is_deleted or getattr(obj, "is_builtin", False)):
            return False
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        if obj is not None and (obj.is_deleted or getattr(obj, "is_builtin", False)):
            return False
        return super().has_delete_permission(request, obj)

    def delete_queryset(self, request, queryset):
        for obj in queryset:
            self.delete_model(request, obj)

    def delete_model(self, request, obj):
        try:
            self.service_delete(actor=_actor(request), obj=obj)
        except ValidationError as exc:
            self.message_user(request, " ".join(exc.messages), level=messages.ERROR)
        except PermissionDenied as exc:
            self.message_user(request, str(exc), level=messages.ERROR)


class ModuleSourceForm(forms.ModelForm):
    new_docker_cfg = forms.CharField(
        label="Replace dockerCfg", required=False, strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        help_text="Base64 of a docker config.json. Leave empty to keep the stored credentials.",
    )
    clear_docker_cfg = forms.BooleanField(label="Remove credentials (anonymous access)", required=False)

    class Meta:
        model = ModuleSource
        fields = ["name", "repo", "scheme", "ca", "release_channel"]

    @sensitive_variables("cleaned")
    def clean(self):
        cleaned = super().clean()
        if cleaned.get("new_docker_cfg"):
            self.instance.docker_cfg = cleaned["new_docker_cfg"]
        elif cleaned.get("clear_docker_cfg"):
            self.instance.docker_cfg = ""
        return cleaned

    def _update_errors(self, errors):
        # Model.clean() validated docker_cfg against the repo; show its error on the replace field (the form has
        # no docker_cfg field, and Django refuses errors for a field the form lacks).
        if hasattr(errors, "error_dict") and "docker_cfg" in errors.error_dict:
            errors.error_dict.setdefault("new_docker_cfg", []).extend(errors.error_dict.pop("docker_cfg"))
        super()._update_errors(errors)


@admin.register(ModuleSource)
class ModuleSourceAdmin(ServiceAdmin):
    form = ModuleSourceForm
    list_display = ("name", "repo", "scheme", "credentials", "status_modules_count", "status_phase", "sync_state",
                    "discovered_count", "deleted_at")
    list_filter = ("scheme", "sync_state", "status_phase", ("deleted_at", admin.EmptyFieldListFilter))
    search_fields = ("name", "repo")
    readonly_fields = ("credentials", "status_modules", "status_modules_count", "status_message", "status_sync_time",
                       "status_phase", "discovered_modules", "discovered_at", "discovery_error", "sync_state",
                       "sync_message", "synced_at", "spec_version", "applied_version", "managed", "deleted_at")

    @method_decorator(sensitive_post_parameters("new_docker_cfg"))
    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        return super().changeform_view(request, object_id, form_url, extra_context)

    @admin.display(description="credentials")
    def credentials(self, obj):
        return "set" if obj.has_credentials else "not set"

    @admin.display(description="discovered")
    def discovered_count(self, obj):
        return len(obj.discovered_modules or [])

    def get_readonly_fields(self, request, obj=None):
        fields = super().get_readonly_fields(request, obj)
        return ("name", *fields) if obj is not None else fields

    service_error_fields = {"docker_cfg": "new_docker_cfg"}

    @sensitive_variables("data", "secret")
    def service_save(self, request, obj, data, change):
        secret = data.get("new_docker_cfg") or ("" if data.get("clear_docker_cfg") else None)
        fields = {f: data[f] for f in ("repo", "scheme", "ca", "release_channel") if f in data}
        if change:
            return services.source_update(actor=_actor(request), source=obj, docker_cfg=secret, **fields)
        return services.source_create(actor=_actor(request), name=data["name"], docker_cfg=secret or "", **fields)

    def service_delete(self, *, actor, obj):
        services.source_delete(actor=actor, source=obj)


class ModulePullOverrideForm(forms.ModelForm):
    class Meta:
        model = ModulePullOverride
        fields = ["name", "source", "image_tag", "scan_interval", "rollback", "auto_renew"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if "source" in self.fields:
            self.fields["source"].queryset = ModuleSource.objects.all()


@admin.register(ModulePullOverride)
class ModulePullOverrideAdmin(ServiceAdmin):
    form = ModulePullOverrideForm
    list_display = ("name", "source", "image_tag", "scan_interval", "short_registry_digest", "short_cluster_digest",
                    "status_message", "sync_state", "owner", "expires_at", "registry_checked_at", "deleted_at")
    list_filter = ("source", "sync_state", "rollback", ("deleted_at", admin.EmptyFieldListFilter))
    search_fields = ("name", "image_tag", "source__name")
    list_select_related = ("source", "owner")
    actions = ["renew_selected", "force_renew_selected"]
    readonly_fields = ("image_reference", "history_links", "status_image_digest", "status_message",
                       "status_updated_at", "status_weight", "registry_digest", "registry_checked_at",
                       "next_check_at", "registry_error", "sync_state", "sync_message", "synced_at",
                       "spec_version", "applied_version", "renew_requested_at", "auto_renewed_digest",
                       "auto_renewed_at", "managed", "owner", "owned_since", "reason", "expires_at", "deleted_at")

    def get_readonly_fields(self, request, obj=None):
        fields = super().get_readonly_fields(request, obj)
        return ("name", *fields) if obj is not None else fields

    @admin.display(description="registry digest")
    def short_registry_digest(self, obj):
        return obj.registry_digest[:19]

    @admin.display(description="cluster digest")
    def short_cluster_digest(self, obj):
        return obj.status_image_digest[:19]

    @admin.display(description="image")
    def image_reference(self, obj):
        return obj.image_ref if obj.pk else "-"

    @admin.display(description="history")
    def history_links(self, obj):
        if not obj.pk:
            return "-"
        digests = reverse("admin:overrides_digestobservation_changelist") + f"?override__id__exact={obj.pk}"
        audit = (reverse("admin:overrides_objectchange_changelist")
                 + f"?object_type=modulepulloverride&object_id={obj.pk}")
        return format_html('<a href="{}">Digest history</a> · <a href="{}">Audit records</a>', digests, audit)

    def service_save(self, request, obj, data, change):
        fields = {f: data[f] for f in ("source", "image_tag", "scan_interval", "rollback", "auto_renew") if f in data}
        if change:
            # Admins may always take over: a write here makes the admin the owner (audited, owner notified).
            return services.override_update(actor=_actor(request), override=obj, take_over=True, **fields)
        return services.override_create(actor=_actor(request), name=data["name"], **fields)

    def service_delete(self, *, actor, obj):
        services.override_delete(actor=actor, override=obj, take_over=True)

    def _renew(self, request, queryset, force):
        count = 0
        for override in queryset.filter(deleted_at__isnull=True):
            try:
                services.override_renew(actor=_actor(request), override=override, force=force, take_over=True)
            except PermissionDenied as exc:
                self.message_user(request, str(exc), level=messages.ERROR)
                continue
            count += 1
        self.message_user(request, f"Renew requested for {count} override(s).")

    @admin.action(description="Renew selected overrides (check the registry now)", permissions=["change"])
    def renew_selected(self, request, queryset):
        self._renew(request, queryset, force=False)

    @admin.action(description="Force renew selected overrides (redeploy even an unchanged digest)",
                  permissions=["change"])
    def force_renew_selected(self, request, queryset):
        self._renew(request, queryset, force=True)


class ReadOnlyAdmin(admin.ModelAdmin):
    """History is written by the services only: nobody adds, changes or deletes it here."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(DigestObservation)
class DigestObservationAdmin(ReadOnlyAdmin):
    list_display = ("observed_at", "override", "origin", "digest", "previous_digest", "image_ref")
    list_filter = ("origin", "observed_at")
    search_fields = ("override__name", "digest", "image_ref")
    list_select_related = ("override",)
    raw_id_fields = ("override",)
    # No date_hierarchy: its month drill-down is a DISTINCT over every row (2 s at 200k rows on SQLite); the
    # observed_at filter narrows by time at the cost of an index range.
    show_full_result_count = False
    paginator = BoundedCountPaginator


@admin.register(ObjectChange)
class ObjectChangeAdmin(ReadOnlyAdmin):
    list_display = ("time", "user_name", "context", "action", "object_type", "object_repr", "message", "request_id")
    list_filter = ("context", "action", "object_type", "time")
    search_fields = ("object_repr", "user_name", "message", "=request_id", "=object_id")
    date_hierarchy = "time"
    show_full_result_count = False


@admin.register(SkippedClusterObject)
class SkippedClusterObjectAdmin(ReadOnlyAdmin):
    """Cluster objects the read-back refused (see overrides.cluster.skips); fixed or deleted in the cluster, they
    leave the list at the next read-back."""

    list_display = ("kind", "name", "reason", "first_seen_at", "last_seen_at")
    list_filter = ("kind",)
    search_fields = ("name", "reason")


@admin.register(Lease)
class LeaseAdmin(ReadOnlyAdmin):
    """Who holds the dispatcher lease, for diagnosis; only the dispatchers change it (see overrides.polling)."""

    list_display = ("name", "holder", "expires_at", "successor", "updated_at")


class ApiTokenForm(forms.ModelForm):
    class Meta:
        model = ApiToken
        fields = ["user", "description", "write_enabled", "expires_at"]


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """Tokens are shown once, when created; only a hash is stored. Created and revoked through overrides.tokens.

    A token acts as its user, so a user who is not a superuser sees, creates and revokes only their own tokens,
    and nobody can move a token to another user (the field is read-only once the token exists).
    """

    form = ApiTokenForm
    list_display = ("key_hint", "user", "description", "write_enabled", "expires_at", "last_used_at", "created_at")
    list_filter = ("write_enabled",)
    search_fields = ("user__username", "description", "key_hint")
    readonly_fields = ("key_hint", "last_used_at", "created_at")

    def get_queryset(self, request):
        tokens = super().get_queryset(request).select_related("user")
        return tokens if request.user.is_superuser else tokens.filter(user=request.user)

    def get_readonly_fields(self, request, obj=None):
        fields = super().get_readonly_fields(request, obj)
        return ("user", *fields) if obj is not None else fields

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "user" and not request.user.is_superuser:
            kwargs["queryset"] = db_field.related_model.objects.filter(pk=request.user.pk)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def save_model(self, request, obj, form, change):
        if change:
            obj.save()  # description, access and expiry; the user field is read-only here
            return
        data = form.cleaned_data
        token, plaintext = token_create(
            actor=_actor(request), owner=data["user"], description=data.get("description", ""),
            read_only=not data.get("write_enabled"), expires_at=data.get("expires_at"),
        )
        obj.pk, obj.key_hint, obj.created_at = token.pk, token.key_hint, token.created_at
        obj._plaintext = plaintext  # lives only for this response, never in the session or a message

    def delete_model(self, request, obj):
        token_revoke(actor=_actor(request), token=obj)

    def delete_queryset(self, request, queryset):
        for token in queryset:
            token_revoke(actor=_actor(request), token=token)

    @sensitive_variables("context")
    def response_add(self, request, obj, post_url_continue=None):
        # The token is shown in this one response (not via the messages framework, whose cookie or session
        # storage would keep it).
        context = {**self.admin_site.each_context(request), "token": obj, "plaintext": obj._plaintext,
                   "opts": self.opts, "title": "API token created"}
        return TemplateResponse(request, "admin/overrides/apitoken/created.html", context)

    def get_changeform_initial_data(self, request):
        return {"user": request.user.pk, "expires_at": timezone.now() + timedelta(days=90)}


@admin.register(NotificationChannel)
class NotificationChannelAdmin(ReadOnlyAdmin):
    """Channels are made in the portal's Notifications page (which checks the URL); the target never shows."""

    list_display = ("name", "kind", "user", "target_hint", "enabled", "failures_in_a_row", "last_error")
    list_filter = ("kind", "enabled")
    exclude = ("target", "secret")


class DeliveryAttemptInline(admin.TabularInline):
    model = DeliveryAttempt
    extra = 0
    can_delete = False
    fields = readonly_fields = ("at", "status_code", "error", "duration_ms")

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Delivery)
class DeliveryAdmin(ReadOnlyAdmin):
    list_display = ("event", "channel", "state", "attempts", "created_at", "finished_at", "last_error")
    list_filter = ("state", "event__event_type")
    search_fields = ("event__override_name",)
    list_select_related = ("event", "channel")
    exclude = ("email_to",)
    inlines = [DeliveryAttemptInline]


@admin.register(NotificationEvent)
class NotificationEventAdmin(ReadOnlyAdmin):
    list_display = ("event_type", "override_name", "created_at", "fanned_out_at")
    list_filter = ("event_type",)
    search_fields = ("override_name",)
