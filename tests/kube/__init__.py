"""Test doubles for the Kubernetes side of MPO Portal: an API-server emulator and a simulated Deckhouse.

- ``KubeEmulator`` (``tests.kube.emulator``): kube-apiserver over real HTTP for ``deckhouse.io``
  ModulePullOverride and ModuleSource, with discovery, CRD validation and fault injection.
- ``DeckhouseController`` (``tests.kube.controller``): the Deckhouse module controller's MPO and
  ModuleSource behaviour, against the emulator's state and a real OCI registry.

They live with the tests, never in the product.
"""

from tests.kube.controller import DeckhouseController
from tests.kube.emulator import KubeEmulator

__all__ = ["DeckhouseController", "KubeEmulator"]
