from django.apps import AppConfig


class OverridesConfig(AppConfig):
    name = "overrides"
    verbose_name = "Module pull overrides"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from portal import private_files

        private_files.connect()

        from django_q.signals import pre_enqueue, pre_execute

        from overrides.enqueue import skip_success_records
        from portal.middleware import adopt_request_id, carry_request_id

        pre_enqueue.connect(carry_request_id, dispatch_uid="portal-carry-request-id")
        pre_enqueue.connect(skip_success_records, dispatch_uid="portal-skip-success-records")
        pre_execute.connect(adopt_request_id, dispatch_uid="portal-adopt-request-id")
