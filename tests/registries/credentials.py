"""Credentials as registries and Deckhouse hold them: htpasswd lines and dockerCfg (config.json) values."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess


def make_docker_cfg(host: str, username: str, password: str, style: str = "auth") -> str:
    """A dockerCfg (base64 of config.json) for `host`; style "auth" (base64 user:pass) or "fields"."""
    if style == "auth":
        entry = {"auth": base64.b64encode(f"{username}:{password}".encode()).decode()}
    else:
        entry = {"username": username, "password": password}
    return base64.b64encode(json.dumps({"auths": {host: entry}}).encode()).decode()


def htpasswd_line(username: str, password: str) -> str:
    """A bcrypt htpasswd line: `htpasswd -Bbn` (apache2-utils), or the bcrypt module when it is missing."""
    if shutil.which("htpasswd"):
        out = subprocess.run(["htpasswd", "-Bbn", username, password], check=True, capture_output=True, text=True)
        return out.stdout.strip()
    import bcrypt

    return f"{username}:{bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=5)).decode()}"
