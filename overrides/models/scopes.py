"""Module scopes: an admin restricts a group to module name patterns (the rule is in overrides/scopes.py)."""

from django.core.validators import RegexValidator
from django.db import models

PATTERN_VALIDATOR = RegexValidator(
    r"^[a-z0-9*?\[\]!-]+$",
    "A module name pattern: lower-case letters, digits and dashes, with * and ? as wildcards (team-a-*, echo).",
)


class ModuleScope(models.Model):
    """Members of `group` may change only the overrides of modules matching one of their groups' patterns.

    A user none of whose groups has a scope is not restricted; superusers never are. Reading stays open.
    """

    group = models.ForeignKey("auth.Group", on_delete=models.CASCADE, related_name="module_scopes")
    pattern = models.CharField(max_length=64, validators=[PATTERN_VALIDATOR],
                               help_text="Module names this group may change: team-a-*, echo (shell wildcards).")

    class Meta:
        ordering = ["group__name", "pattern"]
        constraints = [models.UniqueConstraint(fields=["group", "pattern"], name="unique_module_scope")]

    def __str__(self) -> str:
        return f"{self.group.name}: {self.pattern}"
