"""The REST API for CI pipelines: /api/v1/sources/, /api/v1/overrides/, /api/v1/audit/ (see urls.py)."""
