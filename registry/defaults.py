"""The registry client's defaults: what it uses without Django (bench, scripts), and what portal/settings.py reads
the environment with, so each number is written once. Nothing is imported here: the settings load it cheaply."""

CONNECT_TIMEOUT = 3.0  # seconds to connect to a registry
READ_TIMEOUT = 5.0  # seconds to wait for each answer
POOL_SIZE = 16  # connections kept per registry endpoint
TAGS_PAGE_SIZE = 1000  # tags asked for per page: what go-containerregistry (Deckhouse's client) asks for
