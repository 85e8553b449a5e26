"""API routes under /api/v1/ (namespace "api"). Paths end with a slash; others get a JSON 404 saying so."""

from django.urls import path, re_path
from rest_framework.decorators import api_view, authentication_classes, permission_classes, schema
from rest_framework.exceptions import NotFound
from rest_framework.routers import DefaultRouter

from overrides.api.history import DigestHistoryView, ObjectChangeViewSet
from overrides.api.rollout_waits import async_front
from overrides.api.views import ModulePullOverrideViewSet, ModuleSourceViewSet

app_name = "api"


class ApiRouter(DefaultRouter):
    include_format_suffixes = False  # `.json` suffixes would clash with dotted source names


router = ApiRouter()
router.register("sources", ModuleSourceViewSet, basename="source")
router.register("overrides", ModulePullOverrideViewSet, basename="override")
router.register("audit", ObjectChangeViewSet, basename="audit")


@api_view(["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"])
@authentication_classes([])
@permission_classes([])
@schema(None)
def not_found(request, rest: str = ""):
    """Unknown API paths: a JSON 404 (not Django's HTML page), with a hint for a missing trailing slash."""
    hint = " API paths end with a slash." if not request.path.endswith("/") else ""
    raise NotFound(f"No API endpoint at {request.path}.{hint}")


urlpatterns = [
    path("overrides/<str:name>/digests/", DigestHistoryView.as_view(), name="override-digests"),
    # The rollout wait is async (a wait holds no thread); it calls the router's `rollout` action for its checks.
    path("overrides/<str:name>/rollout/", async_front(ModulePullOverrideViewSet.as_view({"get": "rollout"})),
         name="override-rollout-wait"),
    *router.urls,
    re_path(r"^(?P<rest>.*)$", not_found),
]
