"""Register the poller's django-q2 watchdog Schedule (data only, no schema).

See overrides/polling/watchdog.py for what it does and why. (This migration once also put the dispatcher lease in
django-q2's Schedule table; the lease is now `overrides.Lease`, and 0003 removes that old row.)
"""

from django.db import migrations


def register(apps, schema_editor):
    from overrides.polling.watchdog import ensure_watchdog

    ensure_watchdog(apps.get_model("django_q", "Schedule"))


def unregister(apps, schema_editor):
    from overrides.polling.watchdog import WATCHDOG

    apps.get_model("django_q", "Schedule").objects.filter(name=WATCHDOG).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("overrides", "0001_initial"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]

    operations = [migrations.RunPython(register, unregister)]
