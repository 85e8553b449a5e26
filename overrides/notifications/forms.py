"""Web forms of notification channels and subscriptions. The rules are in `overrides.notifications.services`."""

from __future__ import annotations

from django import forms

from overrides.forms import PortalForm
from overrides.models import ChannelKind, EventType, ModuleSource, SubscriptionScope


class SubscriptionForm(PortalForm):
    event_types = forms.MultipleChoiceField(
        label="Events", required=False, choices=EventType.choices, widget=forms.CheckboxSelectMultiple,
        help_text="None ticked: every event.")
    scope = forms.ChoiceField(label="Of", choices=SubscriptionScope.choices, initial=SubscriptionScope.ALL)
    source = forms.ModelChoiceField(queryset=ModuleSource.objects.all(), required=False, to_field_name="name",
                                    help_text="For “overrides of one source”.")
    module_patterns = forms.CharField(label="Module patterns", required=False, max_length=500,
                                      help_text="For “modules matching patterns”: e.g. echo, team-*.")

    def subscription(self) -> dict:
        data = self.cleaned_data
        return {"event_types": data.get("event_types") or [], "scope": data["scope"], "source": data.get("source"),
                "module_patterns": data.get("module_patterns", "")}


class ChannelForm(SubscriptionForm):
    """A new channel and its first subscription. The URL and the secret are write-only: never rendered back."""

    name = forms.CharField(label="Name", max_length=100)
    kind = forms.ChoiceField(label="Kind", choices=ChannelKind.choices)
    target = forms.CharField(
        label="Webhook URL or e-mail address", max_length=2000,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        help_text="Kept encrypted and never shown again (only its host is).")
    secret = forms.CharField(
        label="HMAC secret (generic webhook)", required=False, max_length=500,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="The receiver checks X-Signature: sha256=<HMAC-SHA256 of the body> with it (Flux's generic-hmac).")
    is_global = forms.BooleanField(label="Global channel (for everyone's overrides; admins only)", required=False)
    own_failures = forms.BooleanField(label="Also tell me about failures of my own overrides", required=False,
                                      initial=True)

    field_order = ["name", "kind", "target", "secret", "is_global", "own_failures", "event_types", "scope", "source",
                   "module_patterns"]

    def __init__(self, *args, may_create_global: bool = False, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if not may_create_global:
            del self.fields["is_global"]
