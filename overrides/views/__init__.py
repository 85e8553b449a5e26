"""The web UI, one module per page family: dashboard, overrides, sources, audit."""
