"""What Django's error page (DEBUG) and error e-mails may show: credentials never.

Functions handling credentials are marked with `sensitive_variables` / `sensitive_post_parameters`; this filter
is the net under them: settings, request headers (Authorization, cookies) and any dict a frame holds have the
values of credential-like keys (`dockerCfg`, `password`, `Authorization`, ...) replaced by stars, so a local
variable that no decorator names still does not leak.
"""

from __future__ import annotations

import re

from django.views.debug import SafeExceptionReporterFilter

CREDENTIAL_KEYS = re.compile(r"API|AUTH|TOKEN|KEY|SECRET|PASS|SIGNATURE|COOKIE|CREDENTIAL|DOCKER_?CFG|PLAINTEXT",
                             flags=re.IGNORECASE)


class CredentialReporterFilter(SafeExceptionReporterFilter):
    """SafeExceptionReporterFilter that also hides Authorization headers and credential keys of any dict, and
    stays on under DEBUG."""

    hidden_settings = CREDENTIAL_KEYS

    def is_active(self, request) -> bool:
        # Django's filter switches itself off under DEBUG; a developer's debug page may be seen by others too.
        return True

    def cleanse_special_types(self, request, value):
        if isinstance(value, dict):
            return self.cleanse_setting("", value)
        return super().cleanse_special_types(request, value)
