"""The one decoder of a ModuleSource's dockerCfg: base64 of a docker config.json, credentials per registry host."""

import base64
import binascii
import json


class DockerCfgError(ValueError):
    """The dockerCfg cannot give credentials for the repository; the message never contains a secret."""


def registry_host(repo: str) -> str:
    """host[:port] of a repository without scheme, e.g. registry.example.com:5000/deckhouse/modules."""
    return repo.split("/", 1)[0]


def docker_cfg_credentials(docker_cfg: str, repo: str) -> tuple[str, str] | None:
    """(username, password) from `auths[<host[:port]>]`, or None for an empty dockerCfg (anonymous).

    Raises DockerCfgError when the value does not decode, or has no entry for the repository's host
    (Deckhouse's own message: `"<repo>" credentials not found in the dockerCfg`).
    """
    if not docker_cfg:
        return None
    try:
        config = json.loads(base64.b64decode(docker_cfg.strip(), validate=True))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise DockerCfgError(
            "dockerCfg is not base64 of a docker config.json: encode it with `base64 -w0 ~/.docker/config.json`."
        ) from None
    auths = config.get("auths") if isinstance(config, dict) else None
    if not isinstance(auths, dict):
        raise DockerCfgError('dockerCfg has no "auths" section: it must be a docker config.json.')
    host = registry_host(repo)
    entry = auths.get(host)
    if entry is None:
        # docker login writes keys with a scheme or a path sometimes; accept those that name the same host.
        for key, value in auths.items():
            bare = key.split("://", 1)[-1].split("/", 1)[0]
            if bare == host:
                entry = value
                break
    if not isinstance(entry, dict):
        raise DockerCfgError(f'"{repo}" credentials not found in the dockerCfg')
    if entry.get("auth"):
        try:
            user, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
        except (binascii.Error, ValueError, UnicodeDecodeError):
            raise DockerCfgError(f'The dockerCfg entry for "{host}" has an "auth" value that is not base64 of user:password.') from None
        return user, password
    if entry.get("username") is not None:
        return entry.get("username", ""), entry.get("password", "")
    raise DockerCfgError(f'"{repo}" credentials not found in the dockerCfg')
