"""URL configuration: the web UI at /, the REST API under /api/, the admin under /admin/."""

import threading

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from overrides.api.urls import not_found as api_not_found
from overrides.identity.views import PortalLoginView
from portal.monitoring import metrics_view


class SchemaView(SpectacularAPIView):
    """drf-spectacular's schema view, one generation at a time per process: the first generation loads the
    extension classes, which is not thread-safe (two at once in a fresh process answered 500)."""

    _one_at_a_time = threading.Lock()

    def _get_schema_response(self, request):
        with self._one_at_a_time:
            return super()._get_schema_response(request)


urlpatterns = [
    # One login page for the portal and the admin (so PORTAL_LOCAL_LOGIN=0 closes both).
    path("admin/login/", PortalLoginView.as_view()),
    path("admin/", admin.site.urls),
    path("login/", PortalLoginView.as_view(), name="login"),
    path("oauth/", include("social_django.urls", namespace="social")),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    # REST API: v1 for pipelines, its OpenAPI schema and Swagger UI (served from the portal, no CDN).
    path("api/v1/webhooks/", include("overrides.polling.webhooks")),  # registry pushes, before the API catch-all
    path("api/v1/", include("overrides.api.urls")),
    path("api/schema/", SchemaView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema"), name="api-docs"),
    re_path(r"^api/(?P<rest>[\s\S]*)\Z", api_not_found),  # any path, newlines included
    path("metrics", metrics_view, name="metrics"),  # Prometheus; bearer PORTAL_METRICS_TOKEN
    path("", include("overrides.urls")),
]
