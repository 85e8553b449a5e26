"""Real container registries and the small servers around them, for tests and bench scripts (no pytest needed).

Each registry is Debian's `docker-registry` (CNCF distribution 2.8; apt packages `docker-registry`,
`apache2-utils` for htpasswd, optionally `skopeo`) started on a free loopback port with its own temporary storage,
and stopped when closed, at interpreter exit, or when the process that started it dies.

- `LocalRegistry` (`local.py`): anonymous, htpasswd Basic (`auth="basic"`) or Bearer tokens (`auth="token"` with
  a `TokenServer`); plain HTTP or HTTPS (`tls=True`). `.host`, `.url`, `.repo` ("127.0.0.1:PORT/deckhouse/modules"),
  `.push(module, tag, content, media_type="oci"|"docker", repo=None) -> digest` (image `<repo>/<module>:<tag>`),
  `.publish_module(name, repo=None)` (a tag of the repo itself: what module discovery lists), `.source(**kw)` (a
  ModuleSource-like SimpleNamespace), `.unique(prefix)`, `.manifest(repo_path, tag)`, `.stop()` / `.start()` and
  `with registry.down(): ...` for outages.
- `TokenServer` (`token_server.py`): a docker token server issuing RS256 JWTs per repository scope; `.issued`.
- `FaultProxy` (`fault_proxy.py`): answers an injected fault instead of the registry (`set_fault(429,
  retry_after="120")`, `clear()`), and paginates tag lists as distribution 3 and Harbor do.
- `CountingProxy` (`counting_proxy.py`): forwards everything and records each request.
- `HangingServer` (`hanging.py`): accepts connections and never answers.
- `NotifyingRegistry` (`notifying.py`): a LocalRegistry posting push events to an endpoint.
- `push_image` (`push.py`), `make_docker_cfg` / `htpasswd_line` (`credentials.py`), `make_ca` /
  `issue_server_cert` (`certificates.py`).

Start them by hand (call `.close()`, or rely on the exit hook); the pytest fixtures are in tests/fixtures/registry.py.
Their own tests: tests/test_registries.py.
"""

from tests.registries.certificates import issue_server_cert, make_ca
from tests.registries.counting_proxy import CountingProxy
from tests.registries.credentials import htpasswd_line, make_docker_cfg
from tests.registries.fault_proxy import FaultProxy
from tests.registries.hanging import HangingServer
from tests.registries.local import DEFAULT_PATH, DOCKER_REGISTRY, INSTALL_HINT, LocalRegistry
from tests.registries.notifying import NotifyingRegistry
from tests.registries.push import ACCEPT, DOCKER_MANIFEST, OCI_MANIFEST, push_image
from tests.registries.token_server import TokenServer

__all__ = [
    "ACCEPT", "DEFAULT_PATH", "DOCKER_MANIFEST", "DOCKER_REGISTRY", "INSTALL_HINT", "OCI_MANIFEST", "CountingProxy",
    "FaultProxy", "HangingServer", "LocalRegistry", "NotifyingRegistry", "TokenServer", "htpasswd_line",
    "issue_server_cert", "make_ca", "make_docker_cfg", "push_image",
]
