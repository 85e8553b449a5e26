"""Template filters of the web UI: UTC times, durations, short digests and the status badge."""

from django import template
from django.urls import NoReverseMatch, reverse
from django.utils.html import format_html, format_html_join

from overrides import presentation
from overrides.audit import in_field_order

register = template.Library()


@register.filter
def utc(value) -> str:
    """`2026-11-03 12:00:05 UTC` inside a <time> element (empty for None)."""
    text = presentation.format_utc(value)
    if not text:
        return ""
    return format_html('<time datetime="{}">{}</time>', presentation.as_utc(value).isoformat(), text)


@register.filter
def duration(value) -> str:
    return presentation.format_duration(value)


@register.filter
def short_digest(value) -> str:
    return presentation.short_digest(value)


@register.filter
def digest(value) -> str:
    """A digest shortened for reading; the full value is in the title."""
    if not value:
        return ""
    return format_html('<code class="digest" title="{}">{}</code>', value, presentation.short_digest(value))


@register.simple_tag
def status_badge(override, short: bool = False) -> str:
    """The verdict badge (its full reason as the tooltip), then what the portal itself could not do (registry,
    apply); `short` (the dashboard's cell): each in a few words, the full text in its tooltip."""
    badge = presentation.override_status(override)
    html = format_html('<span class="badge badge-{}" data-verdict="{}" title="{}">{}</span>', badge.kind, badge.kind,
                       badge.title, presentation.short_status(badge) if short else badge.text)
    for notice in presentation.override_notices(override):
        html += format_html(' <span class="badge badge-{}" title="{}">{}</span>', notice.kind, notice.text,
                            presentation.short_status(notice) if short else notice.text)
    return html


OBJECT_KINDS = {"modulepulloverride": "override", "modulesource": "source", "apitoken": "API token"}
OBJECT_URLS = {"modulepulloverride": "ui:override", "modulesource": "ui:source"}


@register.filter
def object_kind(object_type: str) -> str:
    return OBJECT_KINDS.get(object_type, object_type)


@register.simple_tag
def object_link(change) -> str:
    """A link to the changed object's page (its name when it has none)."""
    name = change.object_repr
    try:
        url = reverse(OBJECT_URLS[change.object_type], args=[name])
    except (KeyError, NoReverseMatch):
        return format_html("{}", name)
    return format_html('<a href="{}">{}</a>', url, name)


@register.simple_tag
def page_link(view_name: str, name, text=None) -> str:
    """`<a href="(page of name)">text</a>`, or the text alone when no URL can hold the name (a cluster object
    imported before the portal refused such names): one row never makes a list page fail."""
    shown = name if text is None else text
    try:
        url = reverse(view_name, args=[name])
    except NoReverseMatch:
        return format_html("{}", shown)
    return format_html('<a href="{}">{}</a>', url, shown)


def _flatten(snapshot, prefix: str = "") -> dict:
    flat = {}
    for key, value in (snapshot or {}).items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _show(value) -> str:
    if value is True or value is False:
        return "true" if value else "false"
    return '""' if value in ("", None) else str(value)


@register.simple_tag
def change_summary(change) -> str:
    """What an audit record changed, in one line: `imageTag: main → pr9` (snapshots never hold secrets)."""
    before, after = _flatten(change.before), _flatten(change.after)
    if change.action == "renew":
        forced = (change.after or {}).get("force")
        return "renew requested (forced: redeploy even if unchanged)" if forced else "renew requested"
    if change.action == "delete":
        return "deleted"
    if not before:
        shown = [k for k in in_field_order(after) if k not in ("name", "deleted") and after[k] not in ("", None)]
        return format_html_join(", ", "{}: {}", ((k, _show(after[k])) for k in shown))
    changed = [(k, _show(before.get(k)), _show(after.get(k))) for k in in_field_order(set(before) | set(after))
               if before.get(k) != after.get(k)]
    if not changed:
        return "no field changed"
    return format_html_join(", ", "{}: {} → {}", changed)
