"""The container health check: exit 0 when GET /health answers 200, 1 otherwise (Docker's HEALTHCHECK contract).

Production refuses requests for host names outside ALLOWED_HOSTS, so the probe names the first allowed host in its
Host header. It talks plain HTTP to the local gunicorn (settings exempt /health from the HTTPS redirect), never
through a proxy and without following redirects, so what it reports is this container's own answer.
Standard library only: it must work even when the application cannot be imported.
"""

import json
import os
import sys
import urllib.error
import urllib.request

DEFAULT_URL = "http://127.0.0.1:8000/health"
TIMEOUT_SECONDS = 8


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None  # a redirect is an answer to report, not something to follow


def allowed_host(allowed_hosts: str) -> str:
    """A host name the site accepts: the first concrete ALLOWED_HOSTS entry, else localhost."""
    for host in (entry.strip() for entry in allowed_hosts.split(",")):
        if host and host != "*":
            # ".example.com" accepts example.com itself as well as its subdomains.
            return host.lstrip(".")
    return "localhost"


def probe(url: str, host: str) -> tuple[int | None, str]:
    """The HTTP status and a one-line summary; status None when nothing answered."""
    if not url.startswith(("http://", "https://")):
        return None, f"HEALTHCHECK_URL must be an http(s) URL, not {url!r}"
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirects)
    headers = {"Host": host}
    if os.environ.get("HEALTH_TOKEN"):  # then /health says what is wrong, not only that something is
        headers["Authorization"] = f"Bearer {os.environ['HEALTH_TOKEN']}"
    request = urllib.request.Request(url, headers=headers)  # noqa: S310 (the scheme is checked above)
    try:
        with opener.open(request, timeout=TIMEOUT_SECONDS) as response:
            status, body = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, body = exc.code, exc.read()
    except OSError as exc:
        return None, f"{url} did not answer: {exc}"
    try:
        checks = json.loads(body)["checks"]
        summary = ", ".join(f"{name} {check.get('status')}" for name, check in checks.items())
    except (ValueError, KeyError, TypeError, AttributeError):
        summary = " ".join(body.decode("utf-8", "replace").split())[:200]
    return status, f"{url} (Host: {host}) answered {status}: {summary}"


def main() -> int:
    url = os.environ.get("HEALTHCHECK_URL", DEFAULT_URL)
    status, summary = probe(url, allowed_host(os.environ.get("ALLOWED_HOSTS", "")))
    sys.stdout.write(summary + "\n")
    return 0 if status == 200 else 1


if __name__ == "__main__":
    sys.exit(main())
