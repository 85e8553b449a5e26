"""Where the registry client may connect: the guard against requests to internal services (SSRF).

A ModuleSource's repo is typed by users, and a registry names its own token server, so without a guard the
portal can be made to request any host:port it can reach (a cloud metadata service, an admin port on localhost)
and show what answered. Two settings decide:

- `REGISTRY_ALLOWED_HOSTS` (env `PORTAL_REGISTRY_ALLOWED_HOSTS`, comma separated): when set, only hosts matching
  one pattern are requested. A pattern is a host name or glob (`registry.example.com`, `*.corp.example`) with an
  optional port (`registry.local:5000`), or an IP address or network (`10.20.0.0/16`), matched against the
  address the name resolves to. A listed host may resolve to a private address.
- `REGISTRY_REFUSE_PRIVATE` (env `PORTAL_REGISTRY_REFUSE_PRIVATE`, default on with `PORTAL_PRODUCTION=1`, off in
  development so a local registry works): refuse every address that is not globally routable (loopback,
  RFC 1918 private, link-local with the 169.254.169.254 metadata service, shared, unique-local, reserved),
  IPv4-mapped IPv6 included, unless the host is allowed by a pattern.

The check runs after DNS resolution, on the address the socket then connects to (`GuardedAdapter`), so a name
that resolves to a public address at one moment and to 127.0.0.1 the next (DNS rebinding) cannot slip through.
Through an HTTP proxy the proxy resolves the name: the client then checks the addresses the name resolves to
here before sending (`check_resolved`). Redirects are handled in `registry.transport` (never to another host).
"""

from __future__ import annotations

import fnmatch
import functools
import ipaddress
import socket
from dataclasses import dataclass

from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import NameResolutionError

from .defaults import setting
from .errors import ErrorKind, RegistryError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class HostPattern:
    """One entry of REGISTRY_ALLOWED_HOSTS / REGISTRY_TRUSTED_REALMS: a host glob or an IP network, and a port."""

    glob: str = ""
    network: IPNetwork | None = None
    port: int | None = None

    def matches_name(self, host: str, port: int | None) -> bool:
        if self.port is not None and port != self.port:
            return False
        if self.network is not None:
            address = _address(host)
            return address is not None and address in self.network
        return fnmatch.fnmatchcase(host.lower(), self.glob)

    def matches_address(self, address: IPAddress, port: int | None) -> bool:
        return self.network is not None and address in self.network and (self.port is None or port == self.port)


def split_host_port(netloc: str) -> tuple[str, int | None]:
    """(host, port) of `host[:port]`, `[v6]:port` or a bare IPv6 address; the host lower-cased, no brackets."""
    netloc = netloc.strip().lower()
    if netloc.startswith("["):
        host, _, rest = netloc[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") and rest[1:].isdigit() else None
    if netloc.count(":") == 1:
        host, _, port = netloc.partition(":")
        return host, int(port) if port.isdigit() else None
    return netloc, None


def _address(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


@functools.lru_cache(maxsize=32)
def parse_patterns(patterns: tuple[str, ...]) -> tuple[HostPattern, ...]:
    parsed = []
    for text in patterns:
        text = text.strip().lower()
        if not text:
            continue
        try:
            parsed.append(HostPattern(network=ipaddress.ip_network(text.strip("[]"), strict=False)))
            continue
        except ValueError:
            pass
        host, port = split_host_port(text)
        try:
            parsed.append(HostPattern(network=ipaddress.ip_network(host, strict=False), port=port))
        except ValueError:
            parsed.append(HostPattern(glob=host, port=port))
    return tuple(parsed)


def _setting_patterns(name: str) -> tuple[HostPattern, ...]:
    value = setting(name, ())
    if isinstance(value, str):
        value = value.split(",")
    return parse_patterns(tuple(value or ()))


def allowed_hosts() -> tuple[HostPattern, ...]:
    return _setting_patterns("REGISTRY_ALLOWED_HOSTS")


def trusted_realms() -> tuple[HostPattern, ...]:
    return _setting_patterns("REGISTRY_TRUSTED_REALMS")


def refuse_private() -> bool:
    return bool(setting("REGISTRY_REFUSE_PRIVATE", False))


def realm_trusted(host: str, port: int | None) -> bool:
    return any(p.matches_name(host, port) for p in trusted_realms())


def check_realm(*, registry_scheme: str, registry_host: str, realm_scheme: str, realm_netloc: str, source: str,
                with_credentials: bool) -> None:
    """A token server a registry names gets the source's credentials (Basic) only when that is safe: never over
    plain HTTP for an HTTPS registry, and on another host only when REGISTRY_TRUSTED_REALMS lists it (a registry
    could otherwise have the portal send a source's credentials to a server of its choosing). The registry's own
    host name on another port counts as the same host. Anonymous token requests may go to any host the guard
    allows: they carry nothing to steal. Raises RegistryError (auth_failed) saying what to change."""
    if registry_scheme == "https" and realm_scheme == "http":
        raise RegistryError(
            ErrorKind.AUTH_FAILED, f"{registry_host} named a plain-HTTP token server ({realm_netloc}): the portal "
            "asks for tokens of an HTTPS registry only over HTTPS, so credentials never travel unencrypted.")
    if not with_credentials:
        return
    realm_host, realm_port = split_host_port(realm_netloc)
    if realm_host == split_host_port(registry_host)[0] or realm_trusted(realm_host, realm_port):
        return
    raise RegistryError(
        ErrorKind.AUTH_FAILED, f"{registry_host} named a token server on another host ({realm_netloc}); the portal "
        f'sends the credentials of ModuleSource "{source}" to another host only when '
        f"PORTAL_REGISTRY_TRUSTED_REALMS lists it (for example PORTAL_REGISTRY_TRUSTED_REALMS={realm_host}).")


def _kind_of(address: IPAddress) -> str:
    mapped = getattr(address, "ipv4_mapped", None)
    address = mapped or address
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link-local (cloud metadata services live there)"
    if address.is_private:
        return "private"
    return "non-public"


def _refusal(host: str, port: int | None, address: IPAddress | None, patterns: tuple[HostPattern, ...]) -> str:
    """Why the portal may not connect to `address` for `host:port` ("" when it may)."""
    named = f"{host}:{port}" if port else host
    if any(p.matches_name(host, port) for p in patterns if p.network is None):
        return ""
    if address is not None and any(p.matches_address(address, port) for p in patterns):
        return ""
    if patterns:
        return (f"the portal does not connect to {named}: it is not listed in PORTAL_REGISTRY_ALLOWED_HOSTS "
                "(the registries the portal may request).")
    if address is not None and refuse_private():
        mapped = getattr(address, "ipv4_mapped", None)
        if not (mapped or address).is_global:
            return (f"the portal does not connect to {named}: it resolves to {address}, a {_kind_of(address)} "
                    "address; if it is your registry, list it in PORTAL_REGISTRY_ALLOWED_HOSTS.")
    return ""


def check_name(host: str, port: int | None) -> None:
    """Before any request: refuse a host the allow-list cannot match (no name glob, no network pattern fits)."""
    patterns = allowed_hosts()
    if not patterns or any(p.network is not None for p in patterns):
        return
    reason = _refusal(host, port, _address(host), patterns)
    if reason:
        raise RegistryError(ErrorKind.DESTINATION_REFUSED, reason)


def _guarded_addresses(host: str, port: int) -> list[str] | None:
    """The addresses of `host` the portal may connect to, in resolver order; None when no check applies.
    Raises RegistryError when every address is refused."""
    patterns = allowed_hosts()
    if not patterns and not refuse_private():
        return None
    if any(p.matches_name(host, port) for p in patterns if p.network is None):
        return None
    infos = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)
    allowed, reason = [], ""
    for info in infos:
        address = ipaddress.ip_address(info[4][0].split("%", 1)[0])
        refusal = _refusal(host, port, address, patterns)
        if refusal:
            reason = reason or refusal
        elif info[4][0] not in allowed:
            allowed.append(info[4][0])
    if not allowed:
        raise RegistryError(ErrorKind.DESTINATION_REFUSED, reason or f"{host} has no address.")
    return allowed


def check_resolved(host: str, port: int) -> None:
    """The check for a request through a proxy: every address the name resolves to here must be allowed."""
    try:
        _guarded_addresses(host, port)
    except socket.gaierror:
        return  # the proxy may know names this machine does not; it answers for them itself


class _GuardedConnectionMixin:
    """Connects only to an allowed address of the host (the resolved addresses checked, then used as is)."""

    def _new_conn(self):  # type: ignore[no-untyped-def]
        try:
            addresses = _guarded_addresses(self.host, self.port)
        except socket.gaierror as exc:
            raise NameResolutionError(self.host, self, exc) from exc
        if addresses is None:
            return super()._new_conn()
        dns_host, last_error = self._dns_host, None
        try:
            for address in addresses:
                self._dns_host = address
                try:
                    return super()._new_conn()
                except OSError as exc:  # NewConnectionError, ConnectTimeoutError: the next address
                    last_error = exc
            raise last_error  # type: ignore[misc]
        finally:
            self._dns_host = dns_host


class GuardedHTTPConnection(_GuardedConnectionMixin, HTTPConnection):
    pass


class GuardedHTTPSConnection(_GuardedConnectionMixin, HTTPSConnection):
    pass


class GuardedHTTPConnectionPool(HTTPConnectionPool):
    ConnectionCls = GuardedHTTPConnection


class GuardedHTTPSConnectionPool(HTTPSConnectionPool):
    ConnectionCls = GuardedHTTPSConnection


class GuardedAdapter(HTTPAdapter):
    """requests' adapter whose direct connections go through the destination guard."""

    def init_poolmanager(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": GuardedHTTPConnectionPool,
                                                   "https": GuardedHTTPSConnectionPool}
