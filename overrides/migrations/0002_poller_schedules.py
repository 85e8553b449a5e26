"""Register the poller's django-q2 rows: the dispatcher watchdog Schedule and the dispatcher lease.

Data only (no schema). See overrides/schedules.py for what the two rows are and why.
"""

from django.db import migrations


def register(apps, schema_editor):
    from overrides.schedules import ensure_schedules

    ensure_schedules(apps.get_model("django_q", "Schedule"))


def unregister(apps, schema_editor):
    from overrides.schedules import LEASE, WATCHDOG

    apps.get_model("django_q", "Schedule").objects.filter(name__in=[WATCHDOG, LEASE]).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("overrides", "0001_initial"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]

    operations = [migrations.RunPython(register, unregister)]
