"""The registry client's defaults, and how it reads the portal's settings: the defaults are what it uses without
Django (bench, scripts) and what portal/settings.py reads the environment with, so each number is written once.
Only the standard library is imported here: the settings load it cheaply, and every registry module may use it.
"""

from __future__ import annotations

import os
import sys

CONNECT_TIMEOUT = 3.0  # seconds to connect to a registry
READ_TIMEOUT = 5.0  # seconds to wait for each answer
POOL_SIZE = 16  # connections kept per registry endpoint
TAGS_PAGE_SIZE = 1000  # tags asked for per page: what go-containerregistry (Deckhouse's client) asks for


def setting(name: str, default):
    """A Django setting, or `default` when Django is absent or not configured (bench, scripts).

    Read on every call so `override_settings` works in tests; cheap when Django is not in use.
    """
    conf = sys.modules.get("django.conf")
    if conf is None:  # Django not loaded: a script or the bench; do not import it for a default
        return default
    settings = conf.settings
    if not settings.configured and not os.environ.get("DJANGO_SETTINGS_MODULE"):
        return default
    try:
        return getattr(settings, name, default)
    except Exception:  # ImproperlyConfigured, a broken settings module: the client still works
        return default
