"""The guard for requests to user-given URLs (detection.outbound), against a real server on 127.0.0.1."""

import ipaddress
import socket

import pytest

from detection import outbound
from detection.tests.http_servers import Answer, LocalServer

REAL_GETADDRINFO = socket.getaddrinfo


def resolving(monkeypatch, names: dict[str, str]) -> list[str]:
    """Make the given host names resolve to the given addresses (others resolve for real); answers the looked-up
    names, in order."""
    looked_up = []

    def fake(host, port, *args, **kwargs):
        looked_up.append(host)
        if host in names:
            family = socket.AF_INET6 if ":" in names[host] else socket.AF_INET
            return [(family, socket.SOCK_STREAM, 6, "", (names[host], port))]
        return REAL_GETADDRINFO(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", fake)
    return looked_up


@pytest.fixture
def private_allowed(settings):
    settings.OUTBOUND_ALLOW_PRIVATE_NETWORKS = True


@pytest.fixture
def private_refused(settings):
    settings.OUTBOUND_ALLOW_PRIVATE_NETWORKS = False


# --- Refusals, with the guard as in production -------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/",
        "http://127.8.9.1:8000/admin",
        "http://10.0.0.1/",
        "http://10.255.1.2/x",
        "http://192.168.1.1/",
        "http://172.16.0.1/",
        "http://169.254.169.254/latest/meta-data/",
        "http://100.64.0.1/",
        "http://0.0.0.0/",
        "http://[::1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://[fd00::1]/",
        "http://[fe80::1]/",
        "https://224.0.0.1/",
    ],
)
def test_private_and_reserved_addresses_are_refused(private_refused, url):
    with pytest.raises(outbound.UnsafeURL, match="private or reserved network address"):
        outbound.fetch(url, max_bytes=1000, timeout=2)


@pytest.mark.parametrize("address", ["127.0.0.1", "10.1.2.3", "169.254.169.254", "::1"])
def test_a_name_resolving_to_a_private_address_is_refused(private_refused, monkeypatch, address):
    resolving(monkeypatch, {"innocent.example": address})
    with pytest.raises(outbound.UnsafeURL, match=f"“innocent.example” leads to .*{address}"):
        outbound.fetch("https://innocent.example/cat.jpg", max_bytes=1000, timeout=2)


def test_a_name_is_refused_when_any_of_its_addresses_is_private(private_refused, monkeypatch):
    def two_addresses(host, port, *args, **kwargs):
        return [
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", port)),
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.7", port)),
        ]

    monkeypatch.setattr(socket, "getaddrinfo", two_addresses)
    with pytest.raises(outbound.UnsafeURL, match=r"10\.0\.0\.7"):
        outbound.url_check("https://mixed.example/")


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ftp://example.com/file.jpg", "“ftp:”"),
        ("file:///etc/passwd", "“file:”"),
        ("gopher://example.com/", "“gopher:”"),
        ("example.com/cat.jpg", "no scheme"),
    ],
)
def test_only_http_and_https_are_accepted(private_refused, url, reason):
    with pytest.raises(outbound.UnsafeURL, match=f"Only http:// and https:// .*{reason}"):
        outbound.fetch(url, max_bytes=1000, timeout=2)


def test_credentials_in_the_url_and_unknown_hosts_are_refused(private_refused):
    with pytest.raises(outbound.UnsafeURL, match="user name or password"):
        outbound.url_check("https://user:secret@example.com/")
    with pytest.raises(outbound.UnsafeURL, match="could not be found"):
        outbound.url_check("https://no-such-host.invalid/")


def test_a_redirect_to_a_private_address_is_refused(private_refused, monkeypatch):
    """The first hop is a public name (here served from 127.0.0.1 by a fake DNS answer the check trusts); the
    redirect it answers, to 127.0.0.1, is checked again and refused."""
    real_resolve = outbound._resolve_checked
    monkeypatch.setattr(
        outbound,
        "_resolve_checked",
        lambda host, port: "127.0.0.1" if host == "public.example" else real_resolve(host, port),
    )
    with LocalServer(Answer(302, headers={"Location": "http://127.0.0.1/secret"})) as server:
        with pytest.raises(outbound.UnsafeURL, match=r"127\.0\.0\.1"):
            outbound.fetch(f"http://public.example:{server.port}/photo.jpg", max_bytes=1000, timeout=2)
        assert [request.path for request in server.received] == ["/photo.jpg"]


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("8.8.8.8", True),
        ("93.184.216.34", True),
        ("2606:4700:4700::1111", True),
        ("100.64.0.1", False),
        ("100.127.255.254", False),
        ("224.0.0.251", False),
        ("239.255.255.250", False),
        ("255.255.255.255", False),
        ("198.18.0.1", False),
        ("::ffff:10.0.0.1", False),
        ("::ffff:169.254.169.254", False),
        ("2002:a00:1::", False),  # 6to4 wrapping 10.0.0.1
        ("ff02::1", False),
        ("::", False),
    ],
)
def test_address_is_public(address, public):
    assert outbound.address_is_public(ipaddress.ip_address(address)) is public


# --- Requests that go out (a test server on 127.0.0.1, so private networks are allowed) --------------------------


def test_fetch_answers_status_type_and_body(private_allowed):
    with LocalServer(Answer(200, b"hello", {"Content-Type": "text/plain"})) as server:
        fetched = outbound.fetch(server.url("/a?b=1"), max_bytes=100, timeout=5)
    assert (fetched.status, fetched.content_type, fetched.body) == (200, "text/plain", b"hello")
    assert server.received[0].path == "/a?b=1"


def test_fetch_connects_to_the_checked_address_with_the_right_host_header(private_allowed, monkeypatch):
    """The name is looked up once, by the check: it does not exist in real DNS, so a second lookup would fail."""
    looked_up = resolving(monkeypatch, {"images.example": "127.0.0.1"})
    with LocalServer(Answer(200, b"ok")) as server:
        fetched = outbound.fetch(f"http://images.example:{server.port}/p.jpg", max_bytes=100, timeout=5)
    assert fetched.body == b"ok"
    assert server.received[0].headers["Host"] == f"images.example:{server.port}"
    assert looked_up == ["images.example", "127.0.0.1"]  # the second: urllib3 connecting to the literal address


def test_fetch_follows_up_to_three_redirects(private_allowed):
    with LocalServer(
        Answer(301, headers={"Location": "/two"}), Answer(302, headers={"Location": "/three"}), Answer(200, b"end")
    ) as server:
        fetched = outbound.fetch(server.url("/one"), max_bytes=100, timeout=5)
    assert fetched.body == b"end" and fetched.final_url == server.url("/three")
    with LocalServer(Answer(302, headers={"Location": "/again"})) as server:
        with pytest.raises(outbound.FetchFailed, match="redirected more than 3 times"):
            outbound.fetch(server.url("/loop"), max_bytes=100, timeout=5)
        assert len(server.received) == 4


def test_fetch_stops_past_the_size_cap(private_allowed):
    with (
        LocalServer(Answer(200, b"x" * 5000)) as server,
        pytest.raises(outbound.ResponseTooLarge, match="5,000 bytes, over the limit of 4,096 bytes"),
    ):
        outbound.fetch(server.url(), max_bytes=4096, timeout=5)


def test_a_long_error_page_is_its_status_not_a_file_too_large(private_allowed):
    with LocalServer(Answer(404, b"<p>not here</p>" * 10_000)) as server:
        assert outbound.fetch(server.url(), max_bytes=100, timeout=5).status == 404


def test_fetch_gives_up_after_its_time_cap(private_allowed):
    with (
        LocalServer(Answer(200, b"late", delay=2)) as server,
        pytest.raises(outbound.FetchFailed, match="took too long"),
    ):
        outbound.fetch(server.url(), max_bytes=100, timeout=0.5)


def test_a_server_dripping_its_answer_cannot_hold_a_fetch_past_its_time_cap(private_allowed):
    import threading
    import time

    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def drip():
        connection, _ = listener.accept()
        with connection:
            connection.recv(4096)
            connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\nContent-Length: 100\r\n\r\n")
            for _ in range(100):  # a byte a second: each receive gets something, the whole never comes in time
                time.sleep(1)
                try:
                    connection.sendall(b"x")
                except OSError:
                    return

    threading.Thread(target=drip, daemon=True).start()
    started = time.monotonic()
    with pytest.raises(outbound.FetchFailed, match="too long"):
        outbound.fetch(f"http://127.0.0.1:{port}/slow.jpg", max_bytes=1000, timeout=2.5)
    assert time.monotonic() - started < 4
    listener.close()


def test_an_unreachable_server_is_a_fetch_failure(private_allowed):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, not listening: connections are refused
        with pytest.raises(outbound.FetchFailed, match="could not be reached"):
            outbound.fetch(f"http://127.0.0.1:{port}/", max_bytes=100, timeout=2)


def test_post_json_sends_the_body_and_headers_and_answers_the_status(private_allowed):
    with LocalServer(Answer(201, b"thanks"), Answer(302, headers={"Location": "/elsewhere"})) as server:
        status = outbound.post_json(
            server.url("/hook"), b'{"a": 1}', headers={"X-Test": "yes"}, timeout=5, max_response_bytes=2
        )
        assert status == 201
        # A redirect is the answer, not followed: a webhook receiver must answer 2xx itself.
        assert outbound.post_json(server.url("/hook"), b"{}", headers={}, timeout=5, max_response_bytes=10) == 302
    first = server.received[0]
    assert (first.method, first.body) == ("POST", b'{"a": 1}')
    assert first.headers["Content-Type"] == "application/json" and first.headers["X-Test"] == "yes"
    assert len(server.received) == 2


def test_post_json_refuses_private_addresses(private_refused):
    with pytest.raises(outbound.UnsafeURL):
        outbound.post_json("http://169.254.169.254/", b"{}", headers={}, timeout=2, max_response_bytes=10)
