"""Web UI URLs (namespace "ui"), included at "/" by portal/urls.py.

Create pages live under /new/ so that a module or source named "new" keeps its own page.
"""

from django.urls import path

from overrides.views import audit, dashboard, notifications, overrides, sources, tokens

app_name = "ui"

urlpatterns = [
    path("", dashboard.dashboard, name="dashboard"),
    path("dashboard/rows/", dashboard.dashboard_rows, name="dashboard-rows"),
    path("new/override/", overrides.override_create, name="override-create"),
    path("overrides/<slug:name>/", overrides.override_detail, name="override"),
    path("overrides/<slug:name>/live/", overrides.override_live, name="override-live"),
    path("overrides/<slug:name>/edit/", overrides.override_edit, name="override-edit"),
    path("overrides/<slug:name>/renew/", overrides.override_renew, name="override-renew"),
    path("overrides/<slug:name>/delete/", overrides.override_delete, name="override-delete"),
    path("overrides/<slug:name>/take-over/", overrides.override_take_over, name="override-take-over"),
    path("sources/", sources.source_list, name="sources"),
    path("new/source/", sources.source_create, name="source-create"),
    path("sources/<str:name>/", sources.source_detail, name="source"),
    path("sources/<str:name>/edit/", sources.source_edit, name="source-edit"),
    path("sources/<str:name>/delete/", sources.source_delete, name="source-delete"),
    path("sources/<str:name>/discover/", sources.source_discover, name="source-discover"),
    path("sources/<str:name>/modules/", sources.source_modules, name="source-modules"),
    path("sources/<str:name>/tags/", sources.source_tags, name="source-tags"),
    path("audit/", audit.audit_list, name="audit"),
    path("notifications/", notifications.notification_list, name="notifications"),
    path("notifications/deliveries/", notifications.delivery_list, name="deliveries"),
    path("new/channel/", notifications.channel_create, name="channel-create"),
    path("notifications/<int:pk>/", notifications.channel_detail, name="channel"),
    path("notifications/<int:pk>/action/", notifications.channel_action, name="channel-action"),
    path("tokens/", tokens.token_list, name="tokens"),
    path("tokens/<int:pk>/revoke/", tokens.token_revoke, name="token-revoke"),
]
