"""Web UI forms. They collect input; the rules live in `overrides.validators` and the services, whose
ValidationErrors are mapped back onto the fields here so the user reads them next to what they typed."""

from __future__ import annotations

from django import forms
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.views.decorators.debug import sensitive_variables

from overrides.models import ChangeAction, ChangeContext, ModuleSource, Scheme, SyncState
from overrides.validators import DEFAULT_SCAN_INTERVAL, parse_scan_interval
from overrides.verdict import STATES as verdict_states


def apply_service_errors(form: forms.Form, exc: ValidationError, field_map: dict[str, str] | None = None) -> None:
    """Show a service's ValidationError on the form: message_dict keys are model field names; a key the form
    has no field for (or `__all__`) becomes a form-wide error."""
    field_map = field_map or {}
    if not hasattr(exc, "error_dict"):
        form.add_error(None, exc.messages)
        return
    for field, messages in exc.message_dict.items():
        target = field_map.get(field, field)
        if target == NON_FIELD_ERRORS or target not in form.fields:
            form.add_error(None, messages)
        else:
            form.add_error(target, messages)


class PortalForm(forms.Form):
    """Labels without Django's trailing colon (the label is above the field, in bold)."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)


def _text(label: str, *, required: bool = True, datalist: str = "", help_text: str = "", max_length: int | None = None,
          **attrs) -> forms.CharField:
    widget_attrs = {"autocomplete": "off", "spellcheck": "false", "autocapitalize": "none", **attrs}
    if datalist:
        widget_attrs["list"] = datalist
    return forms.CharField(label=label, required=required, help_text=help_text, strip=True, max_length=max_length,
                           widget=forms.TextInput(attrs=widget_attrs))


class OverrideForm(PortalForm):
    """Create or edit a ModulePullOverride. On edit the module (the MPO's name) is fixed: another module is
    another override."""

    source = forms.ModelChoiceField(
        queryset=ModuleSource.objects.all(), to_field_name="name", empty_label=None,
        help_text="The ModuleSource whose registry holds the image.",
        error_messages={"invalid_choice": "Choose one of the sources listed."},
    )
    name = _text("Module", datalist="module-suggestions",
                 help_text="The module to override, as the source names it (the suggestions are the modules the "
                           "source offers).")
    image_tag = _text("Image tag", datalist="tag-suggestions",
                      help_text="The tag of the module image in the registry, e.g. main or pr333.")
    scan_interval = _text("Scan interval", required=False, max_length=32,
                          help_text="How often Deckhouse checks the tag for a new image: e.g. 15s, 1m30s, 2h.",
                          placeholder=DEFAULT_SCAN_INTERVAL)
    rollback = forms.BooleanField(
        label="Roll back on deletion", required=False,
        help_text="When this override is deleted, go back to the released version at once instead of keeping "
                  "the developer build running until a release replaces it (Deckhouse 1.69+).",
    )
    auto_renew = forms.BooleanField(
        label="Auto-renew", required=False, initial=True,
        help_text="As soon as the portal sees a new build of the tag, renew the override so the cluster pulls it "
                  "at once instead of at its next scan.",
    )

    reason = _text("Reason", required=False, maxlength=500,
                   help_text="Why you need this override: a few words or the merge request's URL.")
    expires = _text("Expires", required=False, maxlength=64, placeholder="7d",
                    help_text="When the portal deletes this override: a duration from now (e.g. 3d, 12h), a date "
                              "and time (2026-12-24T18:00Z), or never (with the permission). Empty: the default.")

    def __init__(self, *args, editing: bool = False, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.editing = editing
        if editing:
            self.fields["expires"].help_text = (
                "A new expiry: a duration from now (e.g. 3d, 12h), a date and time, or never (with the permission). "
                "Empty keeps the current one (each save moves it forward by the default lifetime).")
        self.fields["name"].error_messages["required"] = "Enter the name of the module to override."
        self.fields["image_tag"].error_messages["required"] = "Enter an image tag, for example main or pr333."
        if editing:
            self.fields["name"].disabled = True
            self.fields["name"].help_text = "The module cannot change: delete this override and create another."

    def clean_scan_interval(self) -> str:
        value = self.cleaned_data.get("scan_interval") or DEFAULT_SCAN_INTERVAL
        try:
            parse_scan_interval(value)  # the one parser; its ValidationError says what is wrong in words
        except OverflowError:
            raise ValidationError(f'Scan interval "{value}" is far too long: use at most a few hours, e.g. 2h.',
                                  code="too_long") from None
        return value

    def service_data(self) -> dict:
        """The cleaned values under the services' argument names."""
        data = self.cleaned_data
        return {
            "source": data["source"],
            "image_tag": data["image_tag"],
            "scan_interval": data.get("scan_interval") or DEFAULT_SCAN_INTERVAL,
            "rollback": bool(data.get("rollback")),
            "auto_renew": bool(data.get("auto_renew")),
            "reason": data.get("reason", ""),
            **({"expires": data["expires"]} if data.get("expires") else {}),
        }


class SourceForm(PortalForm):
    """Create or edit a ModuleSource. The credential is write-only: never rendered back; empty keeps it."""

    name = _text("Name", help_text="The ModuleSource name in the cluster: lowercase letters, digits, - and .")
    repo = _text("Repository", help_text="Registry repository without scheme, e.g. registry.example.com/deckhouse/"
                                          "modules. Each tag of it is a module.")
    scheme = forms.ChoiceField(choices=Scheme.choices, initial=Scheme.HTTPS)
    new_docker_cfg = forms.CharField(
        label="Credentials (dockerCfg)", required=False, strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="Base64 of a docker config.json with an entry for the registry host "
                  "(base64 -w0 ~/.docker/config.json). Leave empty to keep the stored credentials.",
    )
    clear_docker_cfg = forms.BooleanField(label="Remove the stored credentials (anonymous access)", required=False)
    ca = forms.CharField(label="CA certificate", required=False,
                         widget=forms.Textarea(attrs={"rows": 4, "spellcheck": "false"}),
                         help_text="PEM of the registry's root CA, for a registry with a self-signed certificate.")
    release_channel = _text("Release channel", required=False, help_text="Deprecated in Deckhouse; usually empty.")

    FIELD_MAP = {"docker_cfg": "new_docker_cfg"}

    def __init__(self, *args, editing: bool = False, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.editing = editing
        if editing:
            self.fields["name"].disabled = True
        else:
            del self.fields["clear_docker_cfg"]
            self.fields["new_docker_cfg"].help_text = (
                "Base64 of a docker config.json with an entry for the registry host "
                "(base64 -w0 ~/.docker/config.json). Leave empty for anonymous access.")

    @sensitive_variables("cleaned")
    def clean(self):
        cleaned = super().clean()
        if cleaned.get("new_docker_cfg") and cleaned.get("clear_docker_cfg"):
            self.add_error("clear_docker_cfg", "Either paste new credentials or remove them, not both.")
        return cleaned

    def docker_cfg_change(self) -> str | None:
        """None keeps the stored credential, "" clears it, anything else replaces it."""
        if self.cleaned_data.get("new_docker_cfg"):
            return self.cleaned_data["new_docker_cfg"]
        if self.cleaned_data.get("clear_docker_cfg"):
            return ""
        return None

    def spec(self) -> dict:
        return {f: self.cleaned_data.get(f, "") for f in ("repo", "scheme", "ca", "release_channel")}


class OverrideFilterForm(PortalForm):
    """The dashboard's filter controls (GET). Rendering only: `filtersets.ModulePullOverrideFilterSet` filters,
    so the UI and the API agree; names are its parameter names."""

    search = forms.CharField(label="Search", required=False, max_length=200,
                             widget=forms.TextInput(attrs={"type": "search", "placeholder": "module, tag, message"}))
    source = forms.ChoiceField(label="Source", required=False)
    sync_state = forms.ChoiceField(label="Sync state", required=False, choices=[("", "any"), *SyncState.choices])
    verdict = forms.ChoiceField(label="Verdict", required=False,
                                choices=[("", "any"), *((state, state) for state in verdict_states)])
    registry_error = forms.BooleanField(label="Only registry errors", required=False)
    mine = forms.BooleanField(label="Mine", required=False)
    expiring = forms.BooleanField(label="Expiring soon", required=False)

    def __init__(self, *args, source_names: list[str], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["source"].choices = [("", "any"), *((n, n) for n in source_names)]


class AuditFilterForm(PortalForm):
    """The audit page's filter controls (GET); `filtersets.ObjectChangeFilterSet` filters (the API's names)."""

    objectType = forms.ChoiceField(label="Object type", required=False, choices=[  # noqa: N815
        ("", "any"), ("override", "override"), ("source", "source")])
    objectName = forms.CharField(label="Object name", required=False, max_length=255)  # noqa: N815
    objectId = forms.IntegerField(required=False, widget=forms.HiddenInput)  # noqa: N815
    user = forms.CharField(label="Actor", required=False, max_length=150,
                           help_text="A user name; changes without a user are scheduler, cluster or cli.")
    action = forms.ChoiceField(label="Action", required=False, choices=[("", "any"), *ChangeAction.choices])
    context = forms.ChoiceField(label="Via", required=False, choices=[("", "any"), *ChangeContext.choices])
    since = forms.DateTimeField(label="From (UTC)", required=False, widget=forms.DateTimeInput(
        format="%Y-%m-%dT%H:%M:%S", attrs={"type": "datetime-local", "step": 1}))
    until = forms.DateTimeField(label="Until (UTC)", required=False, widget=forms.DateTimeInput(
        format="%Y-%m-%dT%H:%M:%S", attrs={"type": "datetime-local", "step": 1}))
    requestId = forms.CharField(label="Request id", required=False, max_length=36)  # noqa: N815
    search = forms.CharField(label="Text", required=False, max_length=200,
                             widget=forms.TextInput(attrs={"type": "search"}))
