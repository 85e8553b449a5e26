"""My tokens: a signed-in user creates, lists and revokes their personal API tokens; admins see and revoke all.

Admins are superusers (overrides/identity/roles.py), the ones overrides/tokens.py lets act on others' tokens.
The plaintext is shown once, in the response to the create POST (never stored, never put in the session).
"""

from __future__ import annotations

from datetime import timedelta

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from overrides import tokens
from overrides.forms import PortalForm, apply_service_errors
from overrides.identity.roles import ROLES
from overrides.models import ApiToken
from overrides.scopes import scope_patterns

from .access import web_actor

MAX_EXPIRY_DAYS = 3650


class TokenForm(PortalForm):
    description = forms.CharField(label="Description", max_length=200, required=False,
                                  help_text="What the token is for, e.g. the CI project that holds it.")
    read_only = forms.BooleanField(label="Read-only (GET requests only)", required=False)
    expires_days = forms.IntegerField(label="Expires after (days)", required=False, min_value=1,
                                      max_value=MAX_EXPIRY_DAYS, help_text="Empty: never expires.")


def _scope_text(token: ApiToken) -> str:
    """What the token may do: read-only or read and write, within its owner's module scope (as it is now)."""
    access = "read and write" if token.write_enabled else "read-only"
    patterns = scope_patterns(token.user)
    if patterns is None:
        return f"{access}, all modules"
    return f"{access}, modules {', '.join(p for group in patterns.values() for p in group)}"


def _token_rows(request: HttpRequest) -> tuple[list[dict], bool]:
    show_all = request.user.is_superuser  # overrides/tokens.py: only superusers act on others' tokens
    queryset = ApiToken.objects.select_related("user").order_by("-created_at")
    if not show_all:
        queryset = queryset.filter(user=request.user)
    return [{"token": t, "scope": _scope_text(t)} for t in queryset], show_all


def _your_rights(user) -> str:
    """The signed-in user's roles and module scope, as their tokens get them."""
    held = sorted(set(user.groups.filter(name__in=ROLES).values_list("name", flat=True)))
    role = "superuser" if user.is_superuser else (", ".join(held) or "no role")
    patterns = scope_patterns(user)
    scope = "all modules" if patterns is None else ", ".join(p for group in patterns.values() for p in group)
    return f"Your role: {role}; you may change overrides of {scope}. Your tokens get exactly this, as it is when used."


def _page(request: HttpRequest, form: TokenForm, plaintext: str = "", status: int = 200) -> HttpResponse:
    rows, show_all = _token_rows(request)
    return render(request, "overrides/token_list.html",
                  {"form": form, "rows": rows, "show_all": show_all, "plaintext": plaintext,
                   "your_rights": _your_rights(request.user)}, status=status)


@login_required
def token_list(request: HttpRequest) -> HttpResponse:
    if request.method != "POST":
        return _page(request, TokenForm())
    form = TokenForm(request.POST)
    if not form.is_valid():
        return _page(request, form, status=400)
    days = form.cleaned_data["expires_days"]
    try:
        _, plaintext = tokens.token_create(
            actor=web_actor(request), owner=request.user, description=form.cleaned_data["description"],
            read_only=form.cleaned_data["read_only"],
            expires_at=timezone.now() + timedelta(days=days) if days else None)
    except ValidationError as exc:
        apply_service_errors(form, exc, {"expires_at": "expires_days"})  # an inactive owner: a form-wide error
        return _page(request, form, status=400)
    response = _page(request, TokenForm(), plaintext=plaintext)
    response["Cache-Control"] = "no-store"  # the page holds the only copy of the token
    return response


@login_required
@require_POST
def token_revoke(request: HttpRequest, pk: int) -> HttpResponse:
    token = get_object_or_404(ApiToken.objects.select_related("user"), pk=pk)
    tokens.token_revoke(actor=web_actor(request), token=token)
    messages.success(request, f"Token {token.key_hint}… of {token.user.get_username()} revoked: it no longer works.")
    return redirect("ui:tokens")
