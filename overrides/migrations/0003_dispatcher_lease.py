"""The dispatcher lease moves to a table of its own (`overrides.Lease`).

It used to be a never-firing row of django-q2's Schedule table with repurposed fields; that row is deleted here,
so the Schedule table holds only the real watchdog, and the lease row is created in the new table.
"""

import django.utils.timezone
from django.db import migrations, models


# The old row's name, frozen here (overrides.polling.lease no longer knows it).
OLD_LEASE_SCHEDULE = "mpo-portal: dispatcher lease (bookkeeping, never runs)"


def move_lease(apps, schema_editor):
    from overrides.polling.lease import ensure_lease

    apps.get_model("django_q", "Schedule").objects.filter(name=OLD_LEASE_SCHEDULE).delete()
    ensure_lease(apps.get_model("overrides", "Lease"))


class Migration(migrations.Migration):

    dependencies = [
        ('overrides', '0002_poller_schedules'),
        ('django_q', '0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more'),
    ]

    operations = [
        migrations.CreateModel(
            name='Lease',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('name', models.CharField(max_length=100, unique=True)),
                ('holder', models.CharField(blank=True, default='', max_length=200)),
                ('expires_at', models.DateTimeField(default=django.utils.timezone.now)),
                ('successor', models.CharField(blank=True, default='', max_length=200)),
                ('state', models.JSONField(blank=True, default=dict)),
                ('updated_at', models.DateTimeField(default=django.utils.timezone.now)),
            ],
            options={
                'ordering': ['name'],
            },
        ),
        # Backwards: the table is dropped; code of before this change makes its Schedule row again on first use.
        migrations.RunPython(move_lease, migrations.RunPython.noop),
    ]
