"""Template context: the issuer's problem, for the admins' banner (only staff pages pay for the check)."""

from overrides.identity.discovery import issuer_problem


def signin(request):
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated or not user.is_staff:
        return {}
    return {"oidc_problem": issuer_problem()}
