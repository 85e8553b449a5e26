"""Registry credentials are encrypted at rest, and key rotation keeps old rows readable."""

import pytest
from cryptography.fernet import Fernet
from django.db import connection

from overrides.fields import _fernet
from overrides.models import ModuleSource
from tests.registries import make_docker_cfg

pytestmark = pytest.mark.django_db(transaction=True)


def test_database_never_holds_plaintext(make_source, settings, tmp_path):
    secret = make_docker_cfg("registry.example.com", "robot", "pl41ntext-pa55word")
    source = make_source(docker_cfg=secret)
    with connection.cursor() as cursor:
        cursor.execute("SELECT docker_cfg FROM overrides_modulesource WHERE id = %s", [source.pk])
        raw = cursor.fetchone()[0]
    assert secret not in raw and "pl41ntext" not in raw
    assert ModuleSource.objects.get(pk=source.pk).docker_cfg == secret
    # The whole database file too, when it is a file (WAL included).
    name = connection.settings_dict["NAME"]
    if isinstance(name, str) and not name.startswith("file:") and name != ":memory:":
        import pathlib

        for path in pathlib.Path(name).parent.glob(pathlib.Path(name).name + "*"):
            assert b"pl41ntext" not in path.read_bytes()


def test_key_rotation_keeps_old_rows_readable(make_source, settings):
    old_key = settings.PORTAL_ENCRYPTION_KEYS[0]
    secret = make_docker_cfg("registry.example.com", "robot", "rotate-me")
    source = make_source(docker_cfg=secret)
    new_key = Fernet.generate_key().decode()
    settings.PORTAL_ENCRYPTION_KEYS = [new_key, old_key]
    _fernet.cache_clear()
    assert ModuleSource.objects.get(pk=source.pk).docker_cfg == secret
    from django.core.management import call_command

    call_command("rotate_encryption_keys")
    settings.PORTAL_ENCRYPTION_KEYS = [new_key]
    assert ModuleSource.objects.get(pk=source.pk).docker_cfg == secret
