"""A real OIDC provider for the sign-in tests: oidc-provider-mock in its own process (see provider.py)."""
