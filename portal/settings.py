"""Django settings for MPO Portal, read from the environment.

Every setting a user may change is an environment variable documented in README.md, and its default is
written here only (code reads `settings.X`, never a default of its own). Without any of them the portal runs
for development: SQLite under var/, the django-q2 ORM broker, no cluster, and the development keys that
`make run` generates under var/ (portal/devkeys.py). Importing this module writes nothing. With
PORTAL_PRODUCTION=1 it refuses to start unless real keys are given.
"""

import os
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from portal.devkeys import missing_key_message, read_dev_key, var_dir
from registry import defaults as registry_defaults

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = var_dir()


def _env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _env_number(name: str, default: str, kind=int, minimum: float = 0):
    """A numeric setting; anything else stops start-up with one line naming the variable."""
    raw = os.environ.get(name, "").strip() or default
    try:
        value = kind(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a {'whole ' if kind is int else ''}number, not {raw!r}.") from None
    if value < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum:g}, not {raw!r}.")
    return value


def _env_positive(name: str, default: str, kind=float):
    """A numeric setting above zero (timeouts, ports, counts)."""
    raw = os.environ.get(name, "").strip() or default
    try:
        value = kind(raw)
    except ValueError:
        value = 0
    if value <= 0:
        raise ImproperlyConfigured(f"{name} must be a positive {'whole ' if kind is int else ''}number, not {raw!r}.")
    return value


PRODUCTION = _env_bool("PORTAL_PRODUCTION")
# Off unless asked for: the debug page shows code, settings and request data to whoever triggers an error, so
# PORTAL_DEBUG=1 is for a developer's own machine only (see README), and refused in production.
DEBUG = _env_bool("PORTAL_DEBUG")
if PRODUCTION and DEBUG:
    raise ImproperlyConfigured("PORTAL_DEBUG=1 cannot be combined with PORTAL_PRODUCTION=1: the debug page is unsafe.")
DEFAULT_EXCEPTION_REPORTER_FILTER = "portal.error_reports.CredentialReporterFilter"


def _required_key(name: str) -> str:
    """A key from the environment; in development, else the one `make dev-keys` keeps under var/."""
    value = os.environ.get(name, "").strip()
    if value:
        return value
    if PRODUCTION:
        raise ImproperlyConfigured(f"{name} must be set when PORTAL_PRODUCTION=1 (see README.md, 'Settings').")
    value = read_dev_key(VAR_DIR, name)
    if not value:
        raise ImproperlyConfigured(missing_key_message(VAR_DIR, name))
    return value


SECRET_KEY = _required_key("PORTAL_SECRET_KEY")
# Fernet keys, comma separated: the first encrypts, all decrypt (rotation: prepend a new key, re-save, drop the old).
PORTAL_ENCRYPTION_KEYS = [k.strip() for k in _required_key("PORTAL_ENCRYPTION_KEYS").split(",") if k.strip()]

ALLOWED_HOSTS = [h.strip() for h in os.environ.get("PORTAL_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]").split(",") if h]
CSRF_TRUSTED_ORIGINS = [o.strip() for o in os.environ.get("PORTAL_CSRF_TRUSTED_ORIGINS", "").split(",") if o.strip()]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_q",
    "axes",
    "social_django",
    "overrides",
    "registry",
]

MIDDLEWARE = [
    "portal.health.HealthProbeMiddleware",  # first: probes come to the pod IP, not an allowed host
    "portal.middleware.RequestIDMiddleware",
    "portal.monitoring.HttpMetricsMiddleware",
    "portal.health.DatabaseOutageMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "portal.middleware.ContentSecurityPolicyMiddleware",
    "portal.middleware.StaticFilesMiddleware",  # WhiteNoise, async-capable
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "social_django.middleware.SocialAuthExceptionMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "axes.middleware.AxesMiddleware",  # last: turns a locked-out sign-in into portal.login_throttle's answer
]

ROOT_URLCONF = "portal.urls"
WSGI_APPLICATION = "portal.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "portal.context_processors.portal",
                "overrides.identity.context.signin",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL", f"sqlite:///{VAR_DIR / 'portal.sqlite3'}"), conn_max_age=60
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets readers run beside the one writer; IMMEDIATE takes the write lock at BEGIN so concurrent
    # writers wait (busy timeout) instead of failing with "database is locked" half-way through.
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    # A file, not memory, so that a qcluster or server process started by a test shares the test database
    # (pass it on as DATABASE_URL); one per pytest process, so parallel runs never share one.
    DATABASES["default"]["TEST"] = {
        "NAME": os.environ.get("PORTAL_TEST_DB", str(VAR_DIR / f"test-portal-{os.getpid()}.sqlite3"))
    }

if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # A host that takes the connection and never answers (a dropped route, a firewall) fails after this many
    # seconds instead of hanging /readyz and every request (unless DATABASE_URL sets its own connect_timeout).
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault(
        "connect_timeout", _env_number("PORTAL_DB_CONNECT_TIMEOUT", "5", minimum=1))

if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql" and _env_bool("PORTAL_DB_POOL"):
    # A connection pool per process (psycopg-pool): a request gives its connection back when it ends instead of
    # closing it, and the web server's threads (PORTAL_WEB_THREADS) and rollout waits share a few connections.
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": 1, "max_size": _env_number("PORTAL_DB_POOL_SIZE", "20", minimum=1), "timeout": 10}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
# The image collects static files at build time outside the (possibly read-only or mounted) var directory.
STATIC_ROOT = Path(os.environ.get("PORTAL_STATIC_ROOT", VAR_DIR / "staticfiles"))
STATICFILES_DIRS = [BASE_DIR / "static"]
# Serve straight from static/ as well, so tests and a fresh checkout work before collectstatic.
WHITENOISE_USE_FINDERS = True
# --- sign-in throttling (django-axes, see portal/login_throttle.py) -------------------------------------
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]
AXES_FAILURE_LIMIT = _env_number("PORTAL_LOGIN_FAILURE_LIMIT", "5", minimum=1)
AXES_COOLOFF_TIME = timedelta(seconds=_env_number("PORTAL_LOGIN_LOCKOUT_SECONDS", "300"))
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]  # each counted on its own: one user, one address
AXES_RESET_ON_SUCCESS = True
AXES_HTTP_RESPONSE_CODE = 429
AXES_LOCKOUT_CALLABLE = "portal.login_throttle.lockout_response"
AXES_CLIENT_IP_CALLABLE = "portal.login_throttle.client_ip"
AXES_SENSITIVE_PARAMETERS: list[str] = []  # log who and from where (the password is always masked)
AXES_VERBOSE = False  # no start-up banner on every command; failed logins are still logged
# Proxies in front of the portal whose X-Forwarded-For is trusted (0: the peer address is the client).
PORTAL_NUM_PROXIES = _env_number("PORTAL_NUM_PROXIES", "0")

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "login"

# --- sign-in (see overrides/identity/) ---------------------------------------------------------------
# OIDC sign-in (Deckhouse Dex) is on when an issuer is set; local login stays for break-glass admins unless
# PORTAL_LOCAL_LOGIN=0. Provider groups map to the portal's roles on every sign-in.
def _env_list(name: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, "").split(",") if item.strip()]


PORTAL_OIDC_ISSUER = os.environ.get("PORTAL_OIDC_ISSUER", "").strip().rstrip("/")
PORTAL_OIDC_CLIENT_ID = os.environ.get("PORTAL_OIDC_CLIENT_ID", "").strip()
PORTAL_OIDC_CLIENT_SECRET = os.environ.get("PORTAL_OIDC_CLIENT_SECRET", "").strip()
PORTAL_OIDC_NAME = os.environ.get("PORTAL_OIDC_NAME", "").strip() or "Dex"
PORTAL_OIDC_ADMIN_GROUPS = _env_list("PORTAL_OIDC_ADMIN_GROUPS")
PORTAL_OIDC_DEVELOPER_GROUPS = _env_list("PORTAL_OIDC_DEVELOPER_GROUPS")
PORTAL_OIDC_VIEWER_GROUPS = _env_list("PORTAL_OIDC_VIEWER_GROUPS")
PORTAL_LOCAL_LOGIN = _env_bool("PORTAL_LOCAL_LOGIN", default=True)
if PORTAL_OIDC_ISSUER and not PORTAL_OIDC_CLIENT_ID:
    raise ImproperlyConfigured("PORTAL_OIDC_ISSUER is set but PORTAL_OIDC_CLIENT_ID is not (see README.md, 'Sign-in').")

# After axes (the throttle of local sign-ins, above): the provider, then local accounts and every user's permissions.
AUTHENTICATION_BACKENDS = [*AUTHENTICATION_BACKENDS[:-1], "social_core.backends.open_id_connect.OpenIdConnectAuth",
                           "django.contrib.auth.backends.ModelBackend"]
SOCIAL_AUTH_URL_NAMESPACE = "social"
SOCIAL_AUTH_OIDC_OIDC_ENDPOINT = PORTAL_OIDC_ISSUER
SOCIAL_AUTH_OIDC_KEY = PORTAL_OIDC_CLIENT_ID
SOCIAL_AUTH_OIDC_SECRET = PORTAL_OIDC_CLIENT_SECRET
SOCIAL_AUTH_OIDC_SCOPE = ["openid", "email", "profile", "groups"]
SOCIAL_AUTH_OIDC_IGNORE_DEFAULT_SCOPE = True
SOCIAL_AUTH_OIDC_USE_PKCE = True
SOCIAL_AUTH_OIDC_GROUPS_KEY = "groups"
SOCIAL_AUTH_OIDC_GROUPS_MISSING_AS_EMPTY = True  # no groups claim: no role, refused with the reason
SOCIAL_AUTH_OIDC_USERNAME_KEY = "preferred_username"
SOCIAL_AUTH_REQUESTS_TIMEOUT = 10
# The callback URL given to the provider is https behind a TLS-terminating Ingress when PORTAL_NUM_PROXIES trusts
# its X-Forwarded-Proto (SECURE_PROXY_SSL_HEADER, below).
SOCIAL_AUTH_RAISE_EXCEPTIONS = False  # refusals become a message on the login page, never a 500
SOCIAL_AUTH_LOGIN_ERROR_URL = "login"
SOCIAL_AUTH_PIPELINE = (
    "social_core.pipeline.social_auth.social_details",
    "social_core.pipeline.social_auth.social_names",
    "social_core.pipeline.social_auth.social_uid",
    "social_core.pipeline.social_auth.auth_allowed",
    "social_core.pipeline.social_auth.social_user",
    "overrides.identity.pipeline.require_role",  # before create_user: a user without a role is never created
    "social_core.pipeline.user.get_username",
    "social_core.pipeline.user.create_user",
    "social_core.pipeline.social_auth.associate_user",
    "social_core.pipeline.social_auth.load_extra_data",
    "social_core.pipeline.user.user_details",
    "overrides.identity.pipeline.sync_roles",
)

if PRODUCTION:
    SESSION_COOKIE_SECURE = _env_bool("PORTAL_SECURE_COOKIES", True)
    CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
    # HSTS on HTTPS responses; subdomains and preload only on request, as they bind other hosts of the domain.
    SECURE_HSTS_SECONDS = _env_number("PORTAL_HSTS_SECONDS", "31536000")
    SECURE_HSTS_INCLUDE_SUBDOMAINS = _env_bool("PORTAL_HSTS_INCLUDE_SUBDOMAINS")
    SECURE_HSTS_PRELOAD = _env_bool("PORTAL_HSTS_PRELOAD")
    SECURE_SSL_REDIRECT = _env_bool("PORTAL_SSL_REDIRECT")
if PORTAL_NUM_PROXIES:
    # Behind a TLS-terminating proxy: its X-Forwarded-Proto says whether the client used HTTPS (HSTS, redirects).
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# Every page's own scripts and styles only (no inline script anywhere; style attributes are allowed for the
# admin and Swagger UI); no framing, no plugins, forms post to the portal only.
PORTAL_CONTENT_SECURITY_POLICY = os.environ.get(
    "PORTAL_CONTENT_SECURITY_POLICY",
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'",
)

# --- cluster ---------------------------------------------------------------------------------------
# "auto": KUBECONFIG or in-cluster config when present, else off; "off": never talk to a cluster.
PORTAL_CLUSTER = os.environ.get("PORTAL_CLUSTER", "auto").strip().lower() or "auto"
PORTAL_KUBECONFIG = os.environ.get("KUBECONFIG", "")
# Pin the ModulePullOverride API version ("v1alpha1" / "v1alpha2"); empty = discover.
PORTAL_MPO_API_VERSION = os.environ.get("PORTAL_MPO_API_VERSION", "")
PORTAL_MODULE_API_VERSION = os.environ.get("PORTAL_MODULE_API_VERSION", "")
PORTAL_CLUSTER_TIMEOUT = _env_positive("PORTAL_CLUSTER_TIMEOUT", "5")

# --- registry --------------------------------------------------------------------------------------
REGISTRY_CONNECT_TIMEOUT = _env_positive("PORTAL_REGISTRY_CONNECT_TIMEOUT", registry_defaults.CONNECT_TIMEOUT)
REGISTRY_READ_TIMEOUT = _env_positive("PORTAL_REGISTRY_READ_TIMEOUT", registry_defaults.READ_TIMEOUT)
# Connections kept per registry endpoint, and tags asked for per page of a tag list (no variables: tests tune them).
REGISTRY_POOL_SIZE = registry_defaults.POOL_SIZE
REGISTRY_TAGS_PAGE_SIZE = registry_defaults.TAGS_PAGE_SIZE
# Which registries and token servers the portal may request (see registry/destinations.py): host patterns, and
# whether non-public addresses are refused (production); token servers on another host that get credentials.
REGISTRY_ALLOWED_HOSTS = [h.strip() for h in os.environ.get("PORTAL_REGISTRY_ALLOWED_HOSTS", "").split(",")
                          if h.strip()]
REGISTRY_REFUSE_PRIVATE = _env_bool("PORTAL_REGISTRY_REFUSE_PRIVATE", default=PRODUCTION)
REGISTRY_TRUSTED_REALMS = [h.strip() for h in os.environ.get("PORTAL_REGISTRY_TRUSTED_REALMS", "").split(",")
                           if h.strip()]
# --- polling (see overrides/polling/) --------------------------------------------------------------
# Threads of the dispatcher's check pool, and at most how many of them one registry host may hold (a hung
# registry then cannot starve the others).
PORTAL_POLL_THREADS = _env_number("PORTAL_POLL_THREADS", "16", minimum=1)
PORTAL_POLL_HOST_CAP = _env_number("PORTAL_POLL_HOST_CAP", "8", minimum=1)
# Longest backoff (seconds) after failing checks.
PORTAL_POLL_BACKOFF_CAP = _env_number("PORTAL_POLL_BACKOFF_CAP", "300")
# Auto-renew: renew an override as soon as the portal sees a new digest the cluster does not run yet, at most
# once per digest and at most once per PORTAL_AUTO_RENEW_FLOOR seconds per override.
PORTAL_AUTO_RENEW = _env_bool("PORTAL_AUTO_RENEW", True)
PORTAL_AUTO_RENEW_FLOOR = _env_number("PORTAL_AUTO_RENEW_FLOOR", "5", float)

# Rollout waits (GET /api/v1/overrides/{name}/rollout/, see overrides/api/rollout_waits.py): the longest wait,
# how many a server process holds at once, and how many of those one token (or user) may hold.
PORTAL_ROLLOUT_MAX_TIMEOUT = _env_positive("PORTAL_ROLLOUT_MAX_TIMEOUT", "600")
PORTAL_ROLLOUT_MAX_WAITS = _env_number("PORTAL_ROLLOUT_MAX_WAITS", "1000", minimum=1)
PORTAL_ROLLOUT_MAX_WAITS_PER_TOKEN = _env_number("PORTAL_ROLLOUT_MAX_WAITS_PER_TOKEN", "100", minimum=1)
# Threads per web worker process for every request but rollout waits (portal.asgi); keep PORTAL_DB_POOL_SIZE above.
PORTAL_WEB_THREADS = _env_number("PORTAL_WEB_THREADS", "8", minimum=1)
# Bearer token Prometheus sends to /metrics (empty = /metrics is off).
PORTAL_METRICS_TOKEN = os.environ.get("PORTAL_METRICS_TOKEN", "")
# Where a worker pod answers /metrics (portal/worker_metrics.py, started by the image's worker role).
PORTAL_WORKER_METRICS_PORT = _env_number("PORTAL_WORKER_METRICS_PORT", "9100", minimum=1)
# How often open dashboard and override pages refresh their live parts (seconds).
PORTAL_UI_REFRESH_SECONDS = _env_number("PORTAL_UI_REFRESH_SECONDS", "5", minimum=1)
# Shared secret for registry push notifications (empty = the endpoint is disabled).
PORTAL_WEBHOOK_SECRET = os.environ.get("PORTAL_WEBHOOK_SECRET", "")

# --- override lifetime and notifications (see overrides/lifetime.py, overrides/notifications/) ----------
def _env_duration(name: str, default: str):
    from overrides.durations import parse_duration

    raw = os.environ.get(name, "") or default
    try:
        return parse_duration(raw)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name}: {exc}") from None


PORTAL_OVERRIDE_TTL = _env_duration("PORTAL_OVERRIDE_TTL", "7d")
PORTAL_OVERRIDE_REMINDER = _env_duration("PORTAL_OVERRIDE_REMINDER", "24h")
PORTAL_NOTIFICATIONS = _env_bool("PORTAL_NOTIFICATIONS", True)
PORTAL_NOTIFY_TIMEOUT = _env_positive("PORTAL_NOTIFY_TIMEOUT", "5")
PORTAL_NOTIFY_RETRIES = _env_positive("PORTAL_NOTIFY_RETRIES", "5", int)
PORTAL_NOTIFY_BACKOFF = _env_positive("PORTAL_NOTIFY_BACKOFF", "5")
PORTAL_NOTIFY_REPEAT_WINDOW = _env_duration("PORTAL_NOTIFY_REPEAT_WINDOW", "10m")
EMAIL_HOST = os.environ.get("PORTAL_EMAIL_HOST", "localhost")
EMAIL_PORT = _env_positive("PORTAL_EMAIL_PORT", "25", int)
EMAIL_HOST_USER = os.environ.get("PORTAL_EMAIL_USER", "")
EMAIL_HOST_PASSWORD = os.environ.get("PORTAL_EMAIL_PASSWORD", "")
EMAIL_USE_TLS = _env_bool("PORTAL_EMAIL_USE_TLS")
EMAIL_TIMEOUT = PORTAL_NOTIFY_TIMEOUT
DEFAULT_FROM_EMAIL = os.environ.get("PORTAL_EMAIL_FROM", "mpo-portal@localhost")

# --- django-q2 -------------------------------------------------------------------------------------
Q_CLUSTER = {
    "name": "mpo-portal",
    "workers": _env_number("PORTAL_Q_WORKERS", "4", minimum=1),
    "timeout": 60,
    "retry": 90,  # must exceed timeout, else a slow task is redelivered while it still runs
    # Our own loops are level-triggered (sweeps re-enqueue what is pending), so a failed task is
    # recorded and not redelivered forever.
    "max_attempts": 1,
    "ack_failures": True,
    "save_limit": 200,
    "catch_up": False,
    "label": "Tasks",
    "poll": 0.2,
}
if os.environ.get("PORTAL_REDIS_URL"):
    Q_CLUSTER["redis"] = os.environ["PORTAL_REDIS_URL"]
else:
    Q_CLUSTER["orm"] = "default"
    # The ORM broker keeps the clusters' status in a Django cache: a file one, so that the worker's liveness
    # probe (`manage.py worker_alive`, another process) sees it. Redis keeps it in Redis.
    Q_CLUSTER["cache"] = "qcluster-status"
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
if "cache" in Q_CLUSTER:  # only then: a file cache makes its directory when created (system checks create all)
    CACHES["qcluster-status"] = {"BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
                                 "LOCATION": str(VAR_DIR / "qcluster-status")}
if _env_bool("PORTAL_Q_SYNC"):
    Q_CLUSTER["sync"] = True

# --- REST API --------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "overrides.api.authentication.BearerTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["overrides.api.permissions.TokenModelPermissions"],
    "DEFAULT_PARSER_CLASSES": ["portal.json_input.JSONBodyParser"],  # depth, number and size limits
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.LimitOffsetPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_FILTER_BACKENDS": [
        "django_filters.rest_framework.DjangoFilterBackend",
        "rest_framework.filters.SearchFilter",
        "rest_framework.filters.OrderingFilter",
    ],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "overrides.api.exceptions.exception_handler",
    # Requests per token (or session user) and per address without credentials; failed tokens per address.
    "DEFAULT_THROTTLE_CLASSES": ["overrides.api.throttles.TokenRateThrottle",
                                 "overrides.api.throttles.AnonymousRateThrottle"],
    "DEFAULT_THROTTLE_RATES": {
        "token": os.environ.get("PORTAL_API_TOKEN_RATE", "1200/min"),
        "anon": os.environ.get("PORTAL_API_ANON_RATE", "60/min"),
        "bad_token": os.environ.get("PORTAL_API_BAD_TOKEN_RATE", "20/min"),
    },
    "NUM_PROXIES": PORTAL_NUM_PROXIES,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "MPO Portal API",
    "DESCRIPTION": "ModulePullOverrides and ModuleSources for Deckhouse, for CI pipelines.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "SERVE_PERMISSIONS": ["overrides.api.permissions.ApiDocsAccess"],  # PORTAL_API_DOCS_PUBLIC
}
# /api/schema/ and /api/docs/ without login: open for development, closed in production unless asked for.
PORTAL_API_DOCS_PUBLIC = _env_bool("PORTAL_API_DOCS_PUBLIC", default=not PRODUCTION)

# "plain" lines for people, "json" (one object per line, with the request id) for log collectors.
PORTAL_LOG_FORMAT = os.environ.get("PORTAL_LOG_FORMAT", "plain").strip().lower() or "plain"
if PORTAL_LOG_FORMAT not in ("plain", "json"):
    raise ImproperlyConfigured(f'PORTAL_LOG_FORMAT must be "plain" or "json", not "{PORTAL_LOG_FORMAT}".')
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "portal.middleware.RequestIDLogFilter"}},
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"},
        "json": {"()": "portal.logformat.JsonFormatter"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": PORTAL_LOG_FORMAT, "filters": ["request_id"]},
    },
    "root": {"handlers": ["console"], "level": os.environ.get("PORTAL_LOG_LEVEL", "INFO")},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        "kubernetes": {"level": "WARNING"},
        "urllib3": {"level": "WARNING"},
    },
}
