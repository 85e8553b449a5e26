"""Settings of the test suite: portal/settings.py with keys made for this run.

The keys are put into the environment before portal/settings.py reads it, so the qclusters and servers the
tests start inherit them; nothing is generated under var/. The test setup creates var/ (the SQLite test
database lives there) and the static root, which portal/settings.py never does at import.
"""

import os

from portal.devkeys import DEV_KEYS

for _name, (_file, _make) in DEV_KEYS.items():
    if not os.environ.get(_name, "").strip():
        os.environ[_name] = _make()

from portal.settings import *  # noqa: E402, F403
from portal.settings import STATIC_ROOT, VAR_DIR  # noqa: E402

VAR_DIR.mkdir(parents=True, exist_ok=True)
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
