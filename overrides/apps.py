from django.apps import AppConfig


class OverridesConfig(AppConfig):
    name = "overrides"
    verbose_name = "Module pull overrides"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.db.backends.signals import connection_created

        from portal.private_files import narrow_sqlite_files

        connection_created.connect(narrow_sqlite_files, dispatch_uid="portal.narrow_sqlite_files")
