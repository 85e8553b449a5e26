"""Whether cluster sync is on, decided from settings alone (cheap: no kubernetes import, no network)."""

import os

from django.conf import settings

IN_CLUSTER_TOKEN = "/var/run/secrets/kubernetes.io/serviceaccount/token"
# What the portal says wherever sync being off explains something (rows, read-back, rollout waits, commands).
SYNC_OFF_MESSAGE = "Cluster sync is off: no cluster is configured (set KUBECONFIG), or PORTAL_CLUSTER=off."


def cluster_mode() -> str:
    """"on" when a cluster is configured (KUBECONFIG or in-cluster service account), else "off".

    PORTAL_CLUSTER=off turns sync off even when a config exists; with sync off the portal works on its own
    and says so (sync state "off").
    """
    mode = settings.PORTAL_CLUSTER
    if mode == "off":
        return "off"
    if settings.PORTAL_KUBECONFIG:
        return "on"
    if os.environ.get("KUBERNETES_SERVICE_HOST") and os.path.exists(IN_CLUSTER_TOKEN):
        return "on"
    return "off"


def cluster_enabled() -> bool:
    return cluster_mode() == "on"
