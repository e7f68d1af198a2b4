"""The Channels tutorial's project, with groupsvc as its channel layer.

The one change from the tutorial is CHANNEL_LAYERS: channels_groupsvc instead
of channels_redis. CHAT_GROUPSVC lists groupsvc's address (or its shards',
comma-separated, in shard order, as the edges' --groupsvc).
"""
import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "example-only-not-a-secret")
DEBUG = os.environ.get("DJANGO_DEBUG") == "1"
ALLOWED_HOSTS = os.environ.get("CHAT_ALLOWED_HOSTS", "127.0.0.1,localhost").split(",")

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "channels",
    "chat",
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]
ROOT_URLCONF = "chatsite.urls"
ASGI_APPLICATION = "chatsite.asgi.application"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {"context_processors": []},
    }
]
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("CHAT_DJANGO_DB", str(BASE_DIR / "db.sqlite3")),
    }
}
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Django's users on the C++ edge (chat.views.on_edge): the edge's pages, and
# the HS256 secret file the edges read (--jwt_secret_file; scripts/run's is
# build/dev-jwt-secret). Unset: that view says it is not configured.
CHAT_EDGE_URL = os.environ.get("CHAT_EDGE_URL", "")
CHAT_EDGE_SECRET_FILE = os.environ.get("CHAT_EDGE_SECRET_FILE", "")
LOGIN_URL = "/accounts/login/"

CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_groupsvc.GroupsvcChannelLayer",
        "CONFIG": {"targets": os.environ.get("CHAT_GROUPSVC", "127.0.0.1:50051").split(",")},
    }
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
}
