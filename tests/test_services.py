"""The service layer: one audit row per real change, none for a no-op, secrets censored, sync state set."""

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from overrides import services
from overrides.audit import Actor
from overrides.models import ModulePullOverride, ModuleSource, ObjectChange, SyncState
from tests.registries import make_docker_cfg

pytestmark = pytest.mark.django_db


def _changes(obj):
    return list(ObjectChange.objects.filter(object_type=obj._meta.model_name, object_id=obj.pk).order_by("id"))


def test_create_override_writes_one_audit_row(make_override, admin_user):
    override = make_override(name="echo", image_tag="pr333")
    [change] = _changes(override)
    assert change.action == "create" and change.context == "cli" and change.before is None
    lifetime = {"owner": None, "reason": "", "expiresAt": override.expires_at.isoformat()}
    assert change.after == {"name": "echo", "source": "test", "imageTag": "pr333", "scanInterval": "15s",
                            "rollback": False, "autoRenew": True, "deleted": False, **lifetime}
    assert override.sync_state == SyncState.OFF  # no cluster configured in tests
    assert override.next_check_at is not None


def test_update_noop_writes_nothing(make_override, actor):
    override = make_override()
    version = override.spec_version
    services.override_update(actor=actor, override=override, image_tag="main", scan_interval="15s")
    assert len(_changes(override)) == 1
    assert ModulePullOverride.objects.get(pk=override.pk).spec_version == version


def test_update_records_before_and_after_with_user(make_override, admin_user):
    override = make_override()
    web = Actor.from_request(type("R", (), {"user": admin_user, "id": None})(), context="web")
    services.override_update(actor=web, override=override, image_tag="pr1", message="try pr1")
    change = _changes(override)[-1]
    assert change.action == "update" and change.user == admin_user and change.user_name == "admin"
    assert change.before["imageTag"] == "main" and change.after["imageTag"] == "pr1"
    assert change.message == "try pr1"
    admin_user.delete()
    change.refresh_from_db()
    assert change.user is None and change.user_name == "admin"


def test_invalid_values_rejected_with_field(make_source, actor):
    source = make_source()
    with pytest.raises(ValidationError) as exc:
        services.override_create(actor=actor, name="Echo", source=source, image_tag=".bad", scan_interval="1d")
    assert set(exc.value.message_dict) == {"name", "image_tag", "scan_interval"}
    assert not ModulePullOverride.all_objects.exists()
    assert not ObjectChange.objects.filter(object_type="modulepulloverride").exists()


def test_duplicate_and_unknown_source(make_override, actor):
    make_override(name="echo")
    with pytest.raises(ValidationError, match="already overridden"):
        services.override_create(actor=actor, name="echo", source="test", image_tag="x")
    with pytest.raises(ValidationError, match='no source named "nope"'):
        services.override_create(actor=actor, name="other", source="nope", image_tag="x")


def test_module_must_be_offered_when_known(make_source, actor):
    source = make_source()
    ModuleSource.objects.filter(pk=source.pk).update(discovered_modules=["echo", "hello-world"])
    source.refresh_from_db()
    with pytest.raises(ValidationError, match='offer a module "nope"'):
        services.override_create(actor=actor, name="nope", source=source, image_tag="x")
    services.override_create(actor=actor, name="echo", source=source, image_tag="x")


def test_upsert_creates_then_updates_then_noop(make_source, actor):
    make_source()
    data = {"source": "test", "image_tag": "pr1"}
    _, created = services.override_upsert(actor=actor, name="echo", data=data)
    assert created
    override, created = services.override_upsert(actor=actor, name="echo", data={**data, "image_tag": "pr2"})
    assert not created and override.image_tag == "pr2"
    services.override_upsert(actor=actor, name="echo", data={**data, "image_tag": "pr2"})
    assert [c.action for c in _changes(override)] == ["create", "update"]


def test_delete_keeps_history_and_recreate_revives(make_override, actor):
    override = make_override()
    services.override_delete(actor=actor, override=override, message="done")
    assert not ModulePullOverride.objects.filter(name="echo").exists()
    assert ModulePullOverride.all_objects.get(name="echo").is_deleted
    again = services.override_create(actor=actor, name="echo", source="test", image_tag="main")
    assert again.pk == override.pk and not again.is_deleted
    assert [c.action for c in _changes(override)] == ["create", "delete", "create"]


def test_renew_is_always_recorded(make_override, actor):
    override = make_override()
    services.override_renew(actor=actor, override=override)
    services.override_renew(actor=actor, override=override, force=True)
    renews = [c for c in _changes(override) if c.action == "renew"]
    assert len(renews) == 2 and renews[1].after["force"] is True
    override.refresh_from_db()
    assert override.renew_force and override.renew_requested_at is not None


def test_source_secret_is_censored_in_audit(make_source, actor):
    secret = make_docker_cfg("registry.example.com", "robot", "s3cr3t-pa55")
    source = make_source(docker_cfg=secret)
    services.source_update(actor=actor, source=source, docker_cfg=make_docker_cfg("registry.example.com", "r", "x"))
    services.source_update(actor=actor, source=source, docker_cfg=None, scheme="HTTP")
    changes = _changes(source)
    assert [c.action for c in changes] == ["create", "update", "update"]
    for change in changes:
        text = str(change.before) + str(change.after)
        assert "s3cr3t" not in text and secret not in text
    assert changes[0].after["registry"]["dockerCfg"] == "***"
    assert ModuleSource.objects.get(pk=source.pk).docker_cfg.startswith("eyJ")  # kept when None


def test_builtin_source_is_read_only(actor, db):
    deckhouse = ModuleSource.objects.create(name="deckhouse", repo="registry.deckhouse.io/deckhouse/ce/modules",
                                            managed=False)
    with pytest.raises(ValidationError, match="managed by Deckhouse"):
        services.source_update(actor=actor, source=deckhouse, scheme="HTTP")
    with pytest.raises(ValidationError, match="managed by Deckhouse"):
        services.source_delete(actor=actor, source=deckhouse)
    with pytest.raises(ValidationError):
        services.source_create(actor=actor, name="deckhouse", repo="x.io/y")


def test_source_in_use_cannot_be_deleted(make_override, actor):
    override = make_override()
    with pytest.raises(ValidationError, match="used by the overrides echo"):
        services.source_delete(actor=actor, source=override.source)
    services.override_delete(actor=actor, override=override)
    services.source_delete(actor=actor, source=override.source)
    assert ModuleSource.all_objects.get(pk=override.source_id).is_deleted


def test_pending_when_cluster_on(settings, make_override, django_capture_on_commit_callbacks):
    settings.PORTAL_CLUSTER = "on"
    settings.PORTAL_KUBECONFIG = "/nonexistent"
    with django_capture_on_commit_callbacks() as callbacks:
        override = make_override()
    assert override.sync_state == SyncState.PENDING
    assert len(callbacks) >= 2  # apply of the source and of the override, the first check, discovery


def test_source_upsert_creates_then_updates_keeping_the_credential(actor):
    secret = make_docker_cfg("registry.example.com", "robot", "up-s3rt")
    source, created = services.source_upsert(actor=actor, name="dev", data={"repo": "registry.example.com/m",
                                                                            "docker_cfg": secret})
    assert created and source.docker_cfg == secret
    source, created = services.source_upsert(actor=actor, name="dev", data={"repo": "registry.example.com/m",
                                                                            "scheme": "HTTP"})
    assert not created and source.scheme == "HTTP" and source.docker_cfg == secret
    with pytest.raises(ValidationError, match="repo"):
        services.source_upsert(actor=actor, name="other", data={"scheme": "HTTP"})


def test_snapshots_list_their_fields_in_the_one_cr_order(make_override):
    from overrides.audit import FIELD_ORDER, in_field_order, snapshot

    override = make_override()

    def flat(data, prefix=""):
        for key, value in data.items():
            yield from flat(value, f"{prefix}{key}.") if isinstance(value, dict) else [f"{prefix}{key}"]

    for obj in (override, override.source):
        keys = list(flat(snapshot(obj)))
        assert set(keys) <= set(FIELD_ORDER) and in_field_order(reversed(keys)) == keys


@pytest.mark.django_db(transaction=True)
def test_a_running_dispatcher_takes_due_checks_and_new_events_without_a_task_each(make_override, actor, settings):
    """A renew makes the row due now and records an event: with a dispatcher holding the lease, its next tick
    checks the row and its sweep fans the event out, so no task is enqueued for either; without one, both are."""
    from django_q.models import OrmQ

    from overrides.polling.lease import DispatcherLease

    settings.PORTAL_NOTIFICATIONS = True
    override = make_override(name="echo")

    def queued() -> list[str]:
        return sorted(q.task["func"] for q in OrmQ.objects.all())

    OrmQ.objects.all().delete()
    services.override_update(actor=actor, override=override, image_tag="pr1")
    assert queued() == ["overrides.tasks.check_override", "overrides.tasks.fan_out_notifications"]

    OrmQ.objects.all().delete()
    holder = DispatcherLease()
    assert holder.acquire(wait_seconds=1, as_successor=False)
    try:
        services.override_update(actor=actor, override=override, image_tag="pr2")
        assert queued() == []
        assert ModulePullOverride.objects.get(pk=override.pk).next_check_at <= timezone.now()  # due for the tick
    finally:
        holder.release({})


@pytest.mark.django_db(transaction=True)
def test_tasks_whose_outcome_is_on_their_rows_leave_no_success_record():
    """django-q2 keeps no success record for an apply, a check or a notification task (their rows hold the outcome);
    the dispatcher's and the read-back's are kept, as the dispatcher reads the read-back's."""
    from django_q.models import OrmQ
    from django_q.tasks import async_task

    OrmQ.objects.all().delete()
    async_task("overrides.tasks.apply_override", 1, group="apply")
    async_task("overrides.tasks.read_back_cluster", group="read-back")
    saves = {q.task["group"]: q.task.get("save", True) for q in OrmQ.objects.all()}
    assert saves == {"apply": False, "read-back": True}
