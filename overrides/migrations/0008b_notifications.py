# Notification channels, subscriptions, events, deliveries and their attempts.

import django.db.models.deletion
import overrides.fields
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('overrides', '0008_override_lifetime'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name='Delivery',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('email_to', overrides.fields.EncryptedTextField(blank=True, default='')),
                ('state', models.CharField(choices=[('pending', 'pending'), ('succeeded', 'succeeded'), ('failed', 'failed')], db_index=True, default='pending', max_length=10)),
                ('attempts', models.PositiveIntegerField(default=0)),
                ('next_attempt_at', models.DateTimeField(blank=True, db_index=True, null=True)),
                ('enqueued_at', models.DateTimeField(blank=True, help_text='A task was enqueued for the next attempt (its claim clears it).', null=True)),
                ('created_at', models.DateTimeField(auto_now_add=True)),
                ('finished_at', models.DateTimeField(blank=True, null=True)),
                ('last_error', models.CharField(blank=True, default='', max_length=500)),
            ],
            options={
                'verbose_name_plural': 'deliveries',
                'ordering': ['-created_at', '-id'],
            },
        ),
        migrations.AlterField(
            model_name='objectchange',
            name='action',
            field=models.CharField(choices=[('create', 'create'), ('update', 'update'), ('delete', 'delete'), ('renew', 'renew'), ('import', 'import'), ('claim', 'claim'), ('take-over', 'take over')], max_length=10),
        ),
        migrations.CreateModel(
            name='DeliveryAttempt',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('at', models.DateTimeField(db_index=True)),
                ('status_code', models.IntegerField(blank=True, null=True)),
                ('error', models.CharField(blank=True, default='', max_length=500)),
                ('duration_ms', models.PositiveIntegerField(default=0)),
                ('delivery', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='attempt_log', to='overrides.delivery')),
            ],
            options={
                'ordering': ['-at', '-id'],
            },
        ),
        migrations.CreateModel(
            name='NotificationChannel',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('name', models.CharField(max_length=100)),
                ('kind', models.CharField(choices=[('webhook', 'Generic webhook (JSON, X-Signature HMAC)'), ('slack', 'Slack incoming webhook'), ('teams', 'Microsoft Teams Workflows webhook'), ('email', 'E-mail')], max_length=10)),
                ('target', overrides.fields.EncryptedTextField(help_text='The webhook URL or the e-mail address (encrypted, never shown again).')),
                ('target_hint', models.CharField(blank=True, default='', help_text='What is shown of the target.', max_length=200)),
                ('secret', overrides.fields.EncryptedTextField(blank=True, default='', help_text='HMAC key of a generic webhook (encrypted).')),
                ('own_failures', models.BooleanField(default=True, help_text="Receives the failures of the user's own overrides.")),
                ('enabled', models.BooleanField(default=True)),
                ('created_at', models.DateTimeField(auto_now_add=True)),
                ('last_success_at', models.DateTimeField(blank=True, null=True)),
                ('last_failure_at', models.DateTimeField(blank=True, null=True)),
                ('last_error', models.CharField(blank=True, default='', max_length=500)),
                ('failures_in_a_row', models.PositiveIntegerField(default=0)),
                ('user', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.CASCADE, related_name='notification_channels', to=settings.AUTH_USER_MODEL)),
            ],
            options={
                'ordering': ['name', 'id'],
            },
        ),
        migrations.AddField(
            model_name='delivery',
            name='channel',
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.CASCADE, related_name='deliveries', to='overrides.notificationchannel'),
        ),
        migrations.CreateModel(
            name='NotificationEvent',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('event_type', models.CharField(choices=[('build.detected', 'build.detected: the registry shows a new digest'), ('rollout.succeeded', 'rollout.succeeded: the cluster runs the build'), ('rollout.failed', 'rollout.failed: the cluster reports an error'), ('download.failed', 'download.failed: the cluster cannot pull the image'), ('blocked', 'blocked: the module cannot run the build'), ('drift.detected', 'drift.detected: the CR was changed outside the portal'), ('override.created', 'override.created'), ('override.changed', 'override.changed'), ('override.deleted', 'override.deleted'), ('override.expiring', 'override.expiring: the expiry is near'), ('override.expired', 'override.expired: deleted by the scheduler'), ('override.taken-over', 'override.taken-over')], db_index=True, max_length=32)),
                ('override_name', models.CharField(max_length=64)),
                ('dedup_key', models.CharField(blank=True, max_length=200, null=True, unique=True)),
                ('payload', models.JSONField(default=dict)),
                ('created_at', models.DateTimeField(db_index=True)),
                ('fanned_out_at', models.DateTimeField(blank=True, db_index=True, null=True)),
                ('override', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='notification_events', to='overrides.modulepulloverride')),
            ],
            options={
                'ordering': ['-created_at', '-id'],
            },
        ),
        migrations.AddField(
            model_name='delivery',
            name='event',
            field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='deliveries', to='overrides.notificationevent'),
        ),
        migrations.CreateModel(
            name='NotificationSubscription',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('event_types', models.JSONField(blank=True, default=list)),
                ('scope', models.CharField(choices=[('all', 'everything'), ('source', 'overrides of one source'), ('modules', 'modules matching patterns'), ('mine', 'overrides I own')], default='all', max_length=10)),
                ('module_patterns', models.CharField(blank=True, default='', help_text='Shell patterns, comma separated, e.g. echo, team-*.', max_length=500)),
                ('channel', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='subscriptions', to='overrides.notificationchannel')),
                ('source', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.CASCADE, to='overrides.modulesource')),
            ],
            options={
                'ordering': ['id'],
            },
        ),
        migrations.AddIndex(
            model_name='notificationevent',
            index=models.Index(fields=['override', 'event_type', '-created_at'], name='event_override_type'),
        ),
    ]
