"""Template context shared by every page."""

from django.conf import settings


def portal(request):
    from overrides.cluster.state import cluster_mode

    return {"cluster_mode": cluster_mode(), "portal_debug": settings.DEBUG}
