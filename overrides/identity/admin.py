"""The admin of who may do what: groups (roles and provider groups) with their module scopes, and the scopes.

Imported by overrides/admin.py (Django discovers only the app's own admin module).
"""

from django.contrib import admin
from django.contrib.auth.admin import GroupAdmin
from django.contrib.auth.models import Group

from overrides.models import ModuleScope


@admin.register(ModuleScope)
class ModuleScopeAdmin(admin.ModelAdmin):
    """Which module names a group may change (the rule: overrides/scopes.py); groups are the provider's."""

    list_display = ("group", "pattern")
    list_filter = ("group",)
    search_fields = ("group__name", "pattern")


class ModuleScopeInline(admin.TabularInline):
    model = ModuleScope
    extra = 1


admin.site.unregister(Group)


@admin.register(Group)
class PortalGroupAdmin(GroupAdmin):
    """Django's group admin with the group's module scopes on its page."""

    inlines = [ModuleScopeInline]
