"""The one way the product makes requests to addresses its users give (webhooks, analyses from a URL).

A user-given URL could point the server at itself or its private network (server-side request forgery): the cloud's
metadata service at 169.254.169.254, a database on 10.x, an admin page on 127.0.0.1. So a request goes out only
over http(s), to a host whose every resolved address is public, and it connects to the very address that was
checked (a second lookup could answer differently: DNS rebinding), sending the URL's host name as the Host header
and for TLS as SNI and the certificate's expected name. Redirects are followed by hand, each hop checked again.
Responses are streamed and cut off past a size cap, and a total time cap bounds the whole exchange.

No maintained library does this for urllib3 2 / requests today (advocate, the best known, was last released in 2020
and does not work with urllib3 2), so the guard is this small module on top of urllib3.

OUTBOUND_ALLOW_PRIVATE_NETWORKS lets the tests reach a server on 127.0.0.1; production leaves it off.
"""

import contextlib
import ipaddress
import socket
import time
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import urllib3
from django.conf import settings

MAX_REDIRECTS = 3
REDIRECT_STATUSES = {301, 302, 303, 307, 308}
CONNECT_TIMEOUT_SECONDS = 5.0
CHUNK_BYTES = 64 * 1024
ERROR_BODY_BYTES = 64 * 1024
USER_AGENT = "deepfake-detector/1 (+outbound)"

# Python's is_global leaves these out of "not global" or is too generous with them: checked explicitly as well.
BLOCKED_NETWORKS = [
    ipaddress.ip_network(network)
    for network in (
        "0.0.0.0/8",  # "this network"
        "10.0.0.0/8",
        "100.64.0.0/10",  # carrier-grade NAT
        "127.0.0.0/8",
        "169.254.0.0/16",  # link-local, with the cloud metadata service
        "172.16.0.0/12",
        "192.0.0.0/24",
        "192.168.0.0/16",
        "198.18.0.0/15",
        "224.0.0.0/4",  # multicast: is_global says True for most of it
        "240.0.0.0/4",
        "::/128",
        "::1/128",
        "64:ff9b:1::/48",
        "fc00::/7",  # unique local
        "fe80::/10",  # link-local
        "ff00::/8",  # multicast
    )
]


class UnsafeURL(Exception):
    """The URL may not be requested: its scheme, or an address its host resolves to, is not allowed."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class FetchFailed(Exception):
    """The request went out (or tried to) and did not bring back a usable answer."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class ResponseTooLarge(FetchFailed):
    """The answer is longer than the caller's size cap."""


@dataclass(frozen=True)
class Fetched:
    status: int
    content_type: str
    body: bytes
    final_url: str


@dataclass(frozen=True)
class _Target:
    scheme: str
    host: str  # the name from the URL, for the Host header, SNI and the certificate
    port: int
    address: str  # the checked IP address to connect to
    path: str  # path and query

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return host if self.port == default else f"{host}:{self.port}"


def address_is_public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Whether a request may go to this address: a public unicast one, also seen through IPv4-mapped/6to4 forms."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour or (address.teredo[1] if address.teredo else None)
        if embedded is not None and not address_is_public(embedded):
            return False
    if any(address in network for network in BLOCKED_NETWORKS if network.version == address.version):
        return False
    return address.is_global and not (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
    )


def url_check(url: str) -> None:
    """Refuse (UnsafeURL) a URL the product may not request; resolving its host is part of the check."""
    _target(url)


def _target(url: str) -> _Target:
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        raise UnsafeURL(f"“{url}” is not a valid web address.") from None
    if parts.scheme not in {"http", "https"}:
        shown = f"“{parts.scheme}:”" if parts.scheme else "no scheme"
        raise UnsafeURL(f"Only http:// and https:// addresses can be used; “{url}” has {shown}.")
    if not parts.hostname:
        raise UnsafeURL(f"“{url}” has no host name.")
    if parts.username is not None or parts.password is not None:
        raise UnsafeURL("Addresses with a user name or password in them (user:password@host) are not accepted.")
    port = port or (443 if parts.scheme == "https" else 80)
    address = _resolve_checked(parts.hostname, port)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return _Target(scheme=parts.scheme, host=parts.hostname, port=port, address=address, path=path)


def _resolve_checked(host: str, port: int) -> str:
    """The first address of the host, once every address it resolves to has been found public."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise UnsafeURL(f"The host name “{host}” could not be found.") from None
    addresses = [info[4][0].split("%", 1)[0] for info in infos]  # no IPv6 scope (fe80::1%eth0)
    if not addresses:
        raise UnsafeURL(f"The host name “{host}” could not be found.")
    if not settings.OUTBOUND_ALLOW_PRIVATE_NETWORKS:
        for raw in addresses:
            if not address_is_public(ipaddress.ip_address(raw)):
                raise UnsafeURL(
                    f"“{host}” leads to a private or reserved network address ({raw}); only addresses on the public "
                    "internet can be used."
                )
    return addresses[0]


def _pool(target: _Target, timeout: urllib3.Timeout) -> urllib3.HTTPConnectionPool:
    common = {"host": target.address, "port": target.port, "timeout": timeout, "retries": False, "maxsize": 1}
    if target.scheme == "https":
        return urllib3.HTTPSConnectionPool(
            **common, server_hostname=target.host, assert_hostname=target.host, cert_reqs="CERT_REQUIRED"
        )
    return urllib3.HTTPConnectionPool(**common)


def _request(target: _Target, method: str, *, body: bytes | None, headers: dict, deadline: float):
    """Send the request to the checked address; the response is left unread (streamed by the caller)."""
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise FetchFailed("The server took too long to answer.")
    timeout = urllib3.Timeout(connect=min(CONNECT_TIMEOUT_SECONDS, remaining), read=remaining)
    headers = {"Host": target.host_header, "User-Agent": USER_AGENT, "Accept-Encoding": "identity", **headers}
    pool = _pool(target, timeout)
    try:
        response = pool.urlopen(method, target.path, body=body, headers=headers, redirect=False, preload_content=False)
    except urllib3.exceptions.NewConnectionError as exc:  # before its parent, ConnectTimeoutError
        pool.close()
        raise FetchFailed(f"{target.host} could not be reached ({_reason(exc)}).") from None
    except urllib3.exceptions.ConnectTimeoutError:
        pool.close()
        raise FetchFailed(f"{target.host} did not accept a connection in time.") from None
    except urllib3.exceptions.ReadTimeoutError:
        pool.close()
        raise FetchFailed(f"{target.host} took too long to answer.") from None
    except urllib3.exceptions.SSLError as exc:
        pool.close()
        raise FetchFailed(f"The secure connection to {target.host} failed ({_reason(exc)}).") from None
    except urllib3.exceptions.HTTPError as exc:
        pool.close()
        raise FetchFailed(f"{target.host} could not be reached ({_reason(exc)}).") from None
    return response, pool


def _reason(exc: Exception) -> str:
    reason = getattr(exc, "reason", None) or exc
    return str(reason).split(": ", 1)[-1][:200]


def _read_capped(response, *, max_bytes: int, deadline: float, host: str) -> bytes:
    """The body, streamed; ResponseTooLarge past max_bytes, FetchFailed past the deadline."""
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise ResponseTooLarge(f"The file at {host} is {int(declared):,} bytes, over the limit of {max_bytes:,} bytes.")
    chunks, size = [], 0
    try:
        # One receive at a time, each allowed only what is left of the time: a server dripping a byte now and then
        # must not hold the caller past the deadline (a whole chunk's read would wait for all of it).
        while True:
            if not _time_left(response, deadline):
                raise FetchFailed(f"{host} took too long to send its answer.")
            chunk = response.read1(CHUNK_BYTES, decode_content=False)
            if not chunk:
                break
            size += len(chunk)
            if size > max_bytes:
                raise ResponseTooLarge(f"The file at {host} is over the limit of {max_bytes:,} bytes.")
            chunks.append(chunk)
    except (urllib3.exceptions.ReadTimeoutError, TimeoutError):
        raise FetchFailed(f"{host} took too long to send its answer.") from None
    except urllib3.exceptions.HTTPError as exc:
        raise FetchFailed(f"The answer from {host} was cut off ({_reason(exc)}).") from None
    return b"".join(chunks)


def _time_left(response, deadline: float) -> bool:
    """Whether there is time left to read; if so, the connection's next receive may take at most that long."""
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        return False
    connection = getattr(response, "connection", None)
    if connection is not None and connection.sock is not None:
        connection.sock.settimeout(remaining)
    return True


def _read_body(response, *, max_bytes: int, deadline: float, host: str) -> bytes:
    """A success's whole body within max_bytes; of an error page only its start, which is all anyone reads of it
    (a long 404 page is a 404, not a file too large)."""
    if 200 <= response.status < 300:
        return _read_capped(response, max_bytes=max_bytes, deadline=deadline, host=host)
    try:
        return _read_capped(response, max_bytes=ERROR_BODY_BYTES, deadline=deadline, host=host)
    except ResponseTooLarge:
        return b""


def fetch(url: str, *, max_bytes: int, timeout: float) -> Fetched:
    """GET a user-given URL safely: any status is returned (the caller judges it); redirects are followed, each
    checked, up to MAX_REDIRECTS. UnsafeURL, FetchFailed (ResponseTooLarge past max_bytes)."""
    deadline = time.monotonic() + timeout
    for _ in range(MAX_REDIRECTS + 1):
        target = _target(url)
        response, pool = _request(target, "GET", body=None, headers={"Accept": "*/*"}, deadline=deadline)
        try:
            location = response.headers.get("Location")
            if response.status in REDIRECT_STATUSES and location:
                url = urljoin(url, location)
                continue
            body = _read_body(response, max_bytes=max_bytes, deadline=deadline, host=target.host)
            content_type = response.headers.get("Content-Type", "")
            return Fetched(status=response.status, content_type=content_type, body=body, final_url=url)
        finally:
            response.release_conn()
            pool.close()
    raise FetchFailed(f"The address redirected more than {MAX_REDIRECTS} times.")


def post_json(url: str, body: bytes, *, headers: dict, timeout: float, max_response_bytes: int) -> int:
    """POST a JSON body to a user-given URL safely and answer the response's status (a redirect is not followed:
    its 3xx is the answer). The response body is read up to max_response_bytes and dropped. UnsafeURL,
    FetchFailed."""
    deadline = time.monotonic() + timeout
    target = _target(url)
    headers = {"Content-Type": "application/json", **headers}
    response, pool = _request(target, "POST", body=body, headers=headers, deadline=deadline)
    try:
        with contextlib.suppress(ResponseTooLarge):  # the status is all that counts: a long answer is left unread
            _read_capped(response, max_bytes=max_response_bytes, deadline=deadline, host=target.host)
        return response.status
    finally:
        response.release_conn()
        pool.close()
