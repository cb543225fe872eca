"""Settings, read from the environment through one typed reader (django-environ).

With nothing set the app runs locally on SQLite (WAL) with the django-q2 ORM broker. Set
``DATABASE_URL`` for PostgreSQL and ``REDIS_URL`` for the Redis broker. Nothing secret lives here:
the defaults are for a developer's machine and refuse to start with ``DEBUG`` off.
"""

import datetime as dt
import os
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
_DEV_SECRET = "dev-only-insecure-secret-key-change-me"  # noqa: S105 - local default only

DEBUG = env.bool("DEBUG", default=True)
SECRET_KEY = env.str("SECRET_KEY", default=_DEV_SECRET)
if not DEBUG and SECRET_KEY == _DEV_SECRET:
    raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off.")
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

DATA_DIR = Path(env.str("RCT_DATA_DIR", default=str(BASE_DIR / "var")))

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "django_filters",
    "django_q",
    "django_htmx",
    "template_partials",
    "pgtrigger",
    "axes",
    "sync",
    "controltower.apps.ControlTowerConfig",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "controltower.middleware.DeniedAccessLog",
    # Last, as django-axes asks: it turns a locked-out login into its lockout response.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "controltower.urls"
WSGI_APPLICATION = "controltower.wsgi.application"

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
                "controltower.context_processors.roles",
            ],
        },
    },
]

# --- database ------------------------------------------------------------------------------
if env.str("DATABASE_URL", default=""):
    DATABASES = {"default": env.db("DATABASE_URL")}
    DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("CONN_MAX_AGE", default=60))
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
    # No JIT compiling of plans: it pays for long analytical queries, not for the engine's
    # short batch statements, and the planner's high cost estimates for a batch's thousands
    # of values had it compile them (0.3-0.5 s a statement at 1M events, the statement itself
    # 20 ms).
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault("options", "-c jit=off")
    # Server-side parameter binding lets psycopg prepare the statements a process repeats
    # (after a few runs of the same SQL), so PostgreSQL stops parsing and planning the
    # engine's claim and bookkeeping queries each time.
    if env.bool("DB_SERVER_SIDE_BINDING", default=True):
        options = DATABASES["default"].setdefault("OPTIONS", {})
        options.setdefault("server_side_binding", True)
        options.setdefault("prepare_threshold", 5)
else:
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": env.str("SQLITE_PATH", default=str(DATA_DIR / "controltower.sqlite3")),
            # A file, not memory, so worker processes started by the tests share it.
            "TEST": {"NAME": str(DATA_DIR / f"test_controltower_{os.getpid()}.sqlite3")},
            "OPTIONS": {
                # WAL lets the web process read while workers write; IMMEDIATE avoids
                # lock-upgrade deadlocks between concurrent writers.
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
                "transaction_mode": "IMMEDIATE",
                "timeout": 30,
            },
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
CSRF_FAILURE_VIEW = "controltower.middleware.csrf_failure"  # audits the refusal's reason
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"

# Login lockout (django-axes): after LOGIN_FAILURE_LIMIT wrong passwords for one username, that
# username cannot sign in for LOGIN_LOCKOUT_MINUTES, whatever address it comes from; a
# success before the limit resets the count. Tokens for the API are not passwords: they are
# checked by DRF, not here.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env.int("LOGIN_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = dt.timedelta(minutes=env.int("LOGIN_LOCKOUT_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = ["username"]
# Not by address (axes.W006): behind the company's proxy every person shares its address, and
# one person mistyping would lock everyone out.
SILENCED_SYSTEM_CHECKS = ["axes.W006"]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_VERBOSE = False
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = DATA_DIR / "staticfiles"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # whitenoise warns on a missing root
WHITENOISE_USE_FINDERS = DEBUG

# --- background work (django-q2) ------------------------------------------------------------
REDIS_URL = env.str("REDIS_URL", default="")
Q_CLUSTER = {
    "name": env.str("Q_CLUSTER_NAME", default="controltower"),
    "workers": env.int("Q_WORKERS", default=2),
    "timeout": env.int("Q_TIMEOUT", default=60),
    # retry must exceed timeout, or django-q2 hands a still-running task to a second worker.
    "retry": env.int("Q_RETRY", default=90),
    "max_attempts": 3,
    "save_limit": 250,
    "ack_failures": True,
    "catch_up": False,
    "poll": 0.2,
    "label": "Background tasks",
}
if REDIS_URL:
    Q_CLUSTER["redis"] = REDIS_URL
else:
    Q_CLUSTER["orm"] = "default"

# --- journeys -------------------------------------------------------------------------------
RCT = {
    # Transient failures: exponential backoff with full jitter, honouring Retry-After.
    "RETRY_BASE_SECONDS": env.float("RCT_RETRY_BASE_SECONDS", default=2.0),
    "RETRY_CAP_SECONDS": env.float("RCT_RETRY_CAP_SECONDS", default=300.0),
    "MAX_STEP_ATTEMPTS": env.int("RCT_MAX_STEP_ATTEMPTS", default=6),
    # Steps a worker claims at once (at most one per aggregate) and carries stage by stage:
    # the bookkeeping and shared reads of a stage are paid once per batch, so larger batches
    # carry a burst faster (10k burst, 2 workers: 50 -> 106 events/s, 150 -> 145, 400 -> 156,
    # 1000 -> 169; later 500 -> 471-511, 1000 -> 479-535, 2000 -> 526-556) for more worker
    # memory (the qcluster tree: 488 MB at 500, 574 MB at 2000). Each claim takes one
    # advisory lock per step for the claim's transaction: sync.tasks.claim_batch keeps the
    # workers' batches inside three quarters of PostgreSQL's lock table
    # (max_locks_per_transaction x max_connections, 6,400 by default). Claims a group of steps
    # waits on, or runs long bulk calls under, are renewed (sync.engine.claims_renew_aged).
    "CLAIM_BATCH": env.int("RCT_CLAIM_BATCH", default=2000),
    # A claim older than this is treated as a crashed worker and taken again.
    "CLAIM_TTL_SECONDS": env.int("RCT_CLAIM_TTL_SECONDS", default=120),
    # How long a step waits for something it needs (a payment for its invoice) before it
    # becomes an exception a person works.
    "DEPENDENCY_WAIT_SECONDS": env.int("RCT_DEPENDENCY_WAIT_SECONDS", default=1800),
    # How often the clock process sweeps for due work.
    "CLOCK_INTERVAL_SECONDS": env.float("RCT_CLOCK_INTERVAL_SECONDS", default=1.0),
    # How often the clock moves the dashboard deltas into the summaries (the figures are exact
    # either way: a read adds the deltas not moved yet; moving keeps that read small).
    "STATS_ROLLUP_SECONDS": env.float("RCT_STATS_ROLLUP_SECONDS", default=15.0),
}

# --- alerts ---------------------------------------------------------------------------------
# An SLA breach always raises one notification on screen; these also send it out.
SLA_ALERT_EMAILS = env.list("SLA_ALERT_EMAILS", default=[])
SLA_ALERT_WEBHOOK_URL = env.str("SLA_ALERT_WEBHOOK_URL", default="")
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="control-tower@localhost")
EMAIL_BACKEND = env.str("EMAIL_BACKEND", default="django.core.mail.backends.console.EmailBackend")

# --- connectors -----------------------------------------------------------------------------
STRIPE_WEBHOOK_SECRET = env.str("STRIPE_WEBHOOK_SECRET", default="whsec_demo_local_only")
STRIPE_WEBHOOK_TOLERANCE = env.int("STRIPE_WEBHOOK_TOLERANCE", default=300)
NETSUITE_BASE_URL = env.str("NETSUITE_BASE_URL", default="http://127.0.0.1:8765")
# Links from a journey to its records in the vendors' own screens (unset: no links, as with
# the emulators): e.g. https://dashboard.stripe.com and https://<account>.app.netsuite.com
STRIPE_DASHBOARD_URL = env.str("STRIPE_DASHBOARD_URL", default="").rstrip("/")
NETSUITE_UI_URL = env.str("NETSUITE_UI_URL", default="").rstrip("/")
NETSUITE_TOKEN = env.str("NETSUITE_TOKEN", default="demo-netsuite-token")
NETSUITE_TIMEOUT = env.float("NETSUITE_TIMEOUT", default=10.0)

# --- API ------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.LimitOffsetPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_THROTTLE_CLASSES": ["rest_framework.throttling.UserRateThrottle"],
    "DEFAULT_THROTTLE_RATES": {"user": env.str("API_THROTTLE_USER", default="6000/hour")},
    "EXCEPTION_HANDLER": "controltower.api.errors.exception_handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Revenue Control Tower API",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Several models have a ``state`` field with its own choices: name each enum after its model.
    "ENUM_NAME_OVERRIDES": {
        "JourneyStateEnum": "sync.models.Journey.State",
        "StepStateEnum": "sync.models.Step.State",
        "ExceptionStateEnum": "sync.models.ExceptionCase.State",
        "JournalEntryStateEnum": "sync.models.JournalEntry.State",
    },
}

# --- observability --------------------------------------------------------------------------
# GET /metrics/ (Prometheus text format) answers a request bearing this token; without it (or
# with it unset), only a signed-in user with a role.
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")

# --- logging --------------------------------------------------------------------------------
# LOG_FORMAT=json: one JSON object per line (time, level, logger, message, correlation_id and
# any ``extra`` fields); the default is plain text for people reading a terminal.
LOG_FORMAT = env.str("LOG_FORMAT", default="plain")
if LOG_FORMAT not in {"plain", "json"}:
    raise ImproperlyConfigured("LOG_FORMAT must be 'plain' or 'json'.")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"correlation": {"()": "sync.log.CorrelationIdFilter"}},
    "formatters": {
        "plain": {
            "format": "%(asctime)s %(levelname)s %(name)s [%(correlation_id)s] %(message)s",
        },
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": ["levelname", "name", "message", "correlation_id"],
            "rename_fields": {"levelname": "level", "name": "logger"},
            "timestamp": "time",
        },
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": LOG_FORMAT,
            "filters": ["correlation"],
        },
    },
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        "httpx": {"level": "WARNING"},
        "axes": {"level": "WARNING"},
    },
}
