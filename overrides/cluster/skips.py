"""What the read-back refuses to import, and the "skipped from the cluster" list (`SkippedClusterObject`).

The cluster is an input like any other: an object created with kubectl may hold a name or values the portal's
rules refuse (`overrides.validators`), e.g. an MPO named `dotted.module` (a valid Kubernetes name, not a module
name: no page URL can hold it). Such an object is not imported, not taken over, and listed once: logged when it
first appears (or its reason changes), shown to admins (Django admin, sources page) and cleared when the object is
fixed or deleted in the cluster.
"""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from overrides import validators
from overrides.models import SkippedClusterObject

logger = logging.getLogger("overrides.cluster.readback")

MPO_KIND = "ModulePullOverride"
MS_KIND = "ModuleSource"
MAX_REASON = 1000

SkipKey = tuple[str, str]  # (kind, name)


def _problems(checks: list[tuple[str, Any, Any]]) -> str:
    """The first rule an object breaks, in words: `field: message` (values of a wrong type included)."""
    for field, check, value in checks:
        if value is not None and not isinstance(value, str):
            return f"{field} is a {type(value).__name__}, not a string."
        try:
            check(value if value is not None else "")
        except ValidationError as exc:
            return f"{field}: {' '.join(exc.messages)}"
        except Exception:  # noqa: BLE001 - a value a validator cannot even read is refused the same way
            return f"{field} cannot be read."
    return ""


def _shorten(text: str) -> str:
    return text if len(text) <= MAX_REASON else text[: MAX_REASON - 1] + "…"


def override_problem(name: Any, cr: dict[str, Any]) -> str:
    """Why an MPO cannot be imported or taken over ("" when it can): its name and imageTag, as the portal's own
    forms and API would check them. scanInterval is not refused: an unusable one is stored as the default, with
    a note (see `overrides.cluster.readback.override_spec_from_cr`)."""
    spec = cr.get("spec") if isinstance(cr.get("spec"), dict) else {}
    return _shorten(_problems([
        ("metadata.name", validators.validate_module_name, name),
        ("spec.imageTag", validators.validate_image_tag, spec.get("imageTag")),
    ]))


def source_problem(name: Any, cr: dict[str, Any]) -> str:
    """Why a ModuleSource cannot be imported or taken over ("" when it can): name, repo, CA and dockerCfg."""
    spec = cr.get("spec") if isinstance(cr.get("spec"), dict) else {}
    registry = spec.get("registry") if isinstance(spec.get("registry"), dict) else {}
    repo = registry.get("repo")
    problem = _problems([
        ("metadata.name", validators.validate_source_name, name),
        ("spec.registry.repo", validators.validate_repo, repo),
        ("spec.registry.ca", validators.validate_ca, registry.get("ca")),
    ])
    if not problem and registry.get("dockerCfg"):
        problem = _problems([("spec.registry.dockerCfg",
                              lambda cfg: validators.validate_docker_cfg(cfg, repo), registry.get("dockerCfg"))])
    return _shorten(problem)


def record_skips(skipped: dict[SkipKey, str]) -> None:
    """Make the list match what this (complete) read-back skipped: new entries are written and logged once, a
    changed reason is refreshed (and logged), entries of objects now imported or gone are removed."""
    now = timezone.now()
    with transaction.atomic():
        existing = {(row.kind, row.name): row for row in SkippedClusterObject.objects.select_for_update()}
        gone = [row.pk for key, row in existing.items() if key not in skipped]
        if gone:
            SkippedClusterObject.objects.filter(pk__in=gone).delete()
        new, seen = [], []
        for (kind, name), reason in skipped.items():
            row = existing.get((kind, name))
            if row is None:
                new.append(SkippedClusterObject(kind=kind, name=name[:253], reason=reason, first_seen_at=now,
                                                last_seen_at=now))
            elif row.reason != reason:
                SkippedClusterObject.objects.filter(pk=row.pk).update(reason=reason, last_seen_at=now)
            else:
                seen.append(row.pk)
                continue
            logger.warning("not imported from the cluster: %s %s: %s", kind, name, reason)
        SkippedClusterObject.objects.bulk_create(new, ignore_conflicts=True)  # a concurrent read-back wrote it
        if seen:
            SkippedClusterObject.objects.filter(pk__in=seen).update(last_seen_at=now)
    for kind, name in (key for key in existing if key not in skipped):
        logger.info("%s %s is no longer skipped (fixed, imported or deleted in the cluster)", kind, name)
