"""Template context of every page: how one may sign in (the login page, also when the throttle renders it), and
the issuer's problem for the admins' banner (only staff pages pay for that check)."""

from django.conf import settings

from overrides.identity.discovery import issuer_problem, oidc_enabled


def signin(request):
    context = {"oidc_enabled": oidc_enabled(), "oidc_name": settings.PORTAL_OIDC_NAME,
               "local_login": settings.PORTAL_LOCAL_LOGIN}
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated and user.is_staff:
        context["oidc_problem"] = issuer_problem()
    return context
