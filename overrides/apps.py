from django.apps import AppConfig


class OverridesConfig(AppConfig):
    name = "overrides"
    verbose_name = "Module pull overrides"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from portal import private_files

        private_files.connect()
