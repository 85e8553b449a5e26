"""Notification channels in the web UI: each user's own, the global ones (admins), subscriptions, deliveries.

Channel URLs and secrets are write-only: pages show `target_hint` (scheme and host) and never the target itself.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from overrides.forms import apply_service_errors
from overrides.models import Delivery, NotificationChannel, NotificationSubscription
from overrides.notifications import services
from overrides.notifications.forms import ChannelForm, SubscriptionForm

RECENT_DELIVERIES = 25
DELIVERIES_PAGE = 100


def _visible_channel(request: HttpRequest, pk: int) -> NotificationChannel:
    channel = get_object_or_404(NotificationChannel, pk=pk)
    if not services.may_manage(request.user, channel):
        raise PermissionDenied("This channel is not yours.")
    return channel


@login_required
def notification_list(request: HttpRequest) -> HttpResponse:
    own = NotificationChannel.objects.filter(user=request.user).prefetch_related("subscriptions")
    shown = NotificationChannel.objects.filter(user__isnull=True).prefetch_related("subscriptions")
    return render(request, "overrides/notification_list.html", {
        "own": own, "global_channels": shown, "may_manage_global": services.may_manage_global(request.user),
    })


@login_required
def channel_create(request: HttpRequest) -> HttpResponse:
    may_global = services.may_manage_global(request.user)
    form = ChannelForm(request.POST or None, may_create_global=may_global)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            channel = services.channel_create(
                user=request.user, name=data["name"], kind=data["kind"], target=data["target"],
                secret=data.get("secret", ""), is_global=bool(data.get("is_global")),
                own_failures=bool(data.get("own_failures")), portal_host=request.get_host(),
                subscription=form.subscription())
        except ValidationError as exc:
            apply_service_errors(form, exc)
        else:
            messages.success(request, f'Channel "{channel.name}" created.')
            return redirect("ui:channel", pk=channel.pk)
    return render(request, "overrides/channel_form.html", {"form": form})


@login_required
def channel_detail(request: HttpRequest, pk: int) -> HttpResponse:
    channel = _visible_channel(request, pk)
    form = SubscriptionForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            services.subscription_add(user=request.user, channel=channel, **form.subscription())
        except ValidationError as exc:
            apply_service_errors(form, exc)
        else:
            messages.success(request, "Subscription added.")
            return redirect("ui:channel", pk=channel.pk)
    deliveries = (Delivery.objects.filter(channel=channel).select_related("event")
                  .prefetch_related("attempt_log")[:RECENT_DELIVERIES])
    return render(request, "overrides/channel_detail.html", {
        "channel": channel, "subscriptions": channel.subscriptions.select_related("source"), "form": form,
        "deliveries": deliveries,
    })


@require_POST
@login_required
def channel_action(request: HttpRequest, pk: int) -> HttpResponse:
    """Enable, disable or delete a channel; delete one of its subscriptions."""
    channel = _visible_channel(request, pk)
    action = request.POST.get("action")
    if action == "delete":
        services.channel_delete(user=request.user, channel=channel)
        messages.success(request, f'Channel "{channel.name}" deleted.')
        return redirect("ui:notifications")
    if action in ("enable", "disable"):
        services.channel_set_enabled(user=request.user, channel=channel, enabled=action == "enable")
    elif action == "unsubscribe":
        subscription = get_object_or_404(NotificationSubscription, pk=request.POST.get("subscription") or 0,
                                         channel=channel)
        services.subscription_delete(user=request.user, subscription=subscription)
    return redirect("ui:channel", pk=channel.pk)


@login_required
def delivery_list(request: HttpRequest) -> HttpResponse:
    """Every delivery and its attempts, newest first (admins); `?failed=1` only the failed ones."""
    if not services.may_manage_global(request.user):
        raise PermissionDenied("Only admins browse every delivery.")
    deliveries = Delivery.objects.select_related("event", "channel").prefetch_related("attempt_log")
    if request.GET.get("failed"):
        deliveries = deliveries.filter(state="failed")
    if request.GET.get("override"):
        deliveries = deliveries.filter(Q(event__override_name=request.GET["override"]))
    return render(request, "overrides/delivery_list.html", {"deliveries": deliveries[:DELIVERIES_PAGE]})
