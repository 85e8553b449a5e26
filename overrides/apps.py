from django.apps import AppConfig


class OverridesConfig(AppConfig):
    name = "overrides"
    verbose_name = "Module pull overrides"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from portal import private_files

        private_files.connect()

        from django_q.signals import post_spawn, pre_enqueue, pre_execute

        from overrides.enqueue import skip_success_records
        from overrides.polling import standby
        from portal.middleware import adopt_request_id, carry_request_id

        pre_enqueue.connect(carry_request_id, dispatch_uid="portal-carry-request-id")
        pre_enqueue.connect(skip_success_records, dispatch_uid="portal-skip-success-records")
        pre_execute.connect(adopt_request_id, dispatch_uid="portal-adopt-request-id")
        # Every qcluster worker process starts the dispatcher standby (one per qcluster takes the role).
        post_spawn.connect(standby.start, dispatch_uid="portal-dispatcher-standby")
