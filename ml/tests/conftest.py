import hashlib
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from conftest import picture
from ml.bench import benchmark_model
from ml.preprocessing import to_batch
from ml.weights import save_weights


def calibrated_model(name: str = "resnet18", *, seed: int = 0):
    """A randomly initialised model that behaves like a trained one on the test pictures (ml.bench.benchmark_model):
    untrained batch-norm statistics would make every probability sit near 0.5 and let comparisons between code
    paths pass for the wrong reason; here some pictures come out clearly fake, others clearly real."""
    calibration = to_batch([picture(260 + 13 * i, 200 + 7 * i, seed=100 + i) for i in range(16)], 224)
    return benchmark_model(name, calibration, seed=seed)


@pytest.fixture(scope="session")
def resnet18():
    return calibrated_model("resnet18")


@pytest.fixture
def resnet18_weights(resnet18, tmp_path):
    path = tmp_path / "resnet18.safetensors"
    sha256 = save_weights(resnet18, path)
    return path, sha256


class HubStandIn:
    """A Hugging Face Hub on the loopback interface, answering `hf_hub_download` the way huggingface.co does.

    HEAD/GET /{repo}/resolve/{revision}/{file} of an LFS file answers 302 to a CDN host with the file's metadata
    on the redirect itself (X-Repo-Commit, X-Linked-Etag = the SHA-256, X-Linked-Size); the "CDN" is the same
    server reached as `localhost`, so huggingface_hub treats it as another host and must not send it the token.
    Errors carry the hub's X-Error-Code headers. Every request is recorded as (method, path, Authorization).
    """

    COMMIT = "0123456789abcdef0123456789abcdef01234567"

    def __init__(self, files: dict[tuple[str, str], bytes], *, private: frozenset[str] = frozenset(), token=None):
        self.files = files
        self.blobs = {hashlib.sha256(data).hexdigest(): data for data in files.values()}
        self.private, self.token = private, token
        self.requests: list[tuple[str, str, str | None]] = []
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_HEAD(self):
                hub.answer(self, body=False)

            def do_GET(self):
                hub.answer(self, body=True)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def answer(self, request: BaseHTTPRequestHandler, *, body: bool) -> None:
        authorization = request.headers.get("Authorization")
        self.requests.append((request.command, request.path, authorization))
        parts = request.path.split("?")[0].lstrip("/").split("/")
        if parts[0] == "cdn" and len(parts) == 2 and parts[1] in self.blobs:
            data = self.blobs[parts[1]]
            return self.send(request, 200, {"ETag": f'"{parts[1]}"', "Content-Length": str(len(data))}, data, body)
        if len(parts) < 5 or parts[2] != "resolve":
            return self.fail(request, 404, "RepoNotFound")
        repo, revision, filename = "/".join(parts[:2]), parts[3], "/".join(parts[4:])
        if not any(key[0] == repo for key in self.files) or (
            repo in self.private and authorization != f"Bearer {self.token}"
        ):
            return self.fail(request, 401, "RepoNotFound")
        if revision not in {"main", self.COMMIT}:
            return self.fail(request, 404, "RevisionNotFound")
        data = self.files.get((repo, filename))
        if data is None:
            return self.fail(request, 404, "EntryNotFound")
        sha256 = hashlib.sha256(data).hexdigest()
        headers = {
            "Location": f"http://localhost:{self.port}/cdn/{sha256}",
            "X-Repo-Commit": self.COMMIT,
            "X-Linked-Etag": f'"{sha256}"',
            "X-Linked-Size": str(len(data)),
            "ETag": '"0fa1b2c3"',  # the Git pointer file's ETag: the client must prefer X-Linked-Etag
            "Content-Length": "0",
        }
        self.send(request, 302, headers, b"", body)

    def fail(self, request: BaseHTTPRequestHandler, status: int, code: str) -> None:
        headers = {"X-Error-Code": code, "X-Repo-Commit": self.COMMIT, "Content-Length": "0"}
        self.send(request, status, headers, b"", False)

    @staticmethod
    def send(request: BaseHTTPRequestHandler, status: int, headers: dict[str, str], data: bytes, body: bool) -> None:
        request.send_response(status)
        for name, value in headers.items():
            request.send_header(name, value)
        request.end_headers()
        if body and data:
            request.wfile.write(data)

    def paths(self, method: str | None = None) -> list[str]:
        return [path for m, path, _ in self.requests if method in (None, m)]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hub(resnet18_weights):
    """The stand-in hub serving acme/detector (public) and acme/private (needs token "hf_secret")."""
    data = resnet18_weights[0].read_bytes()
    server = HubStandIn(
        {("acme/detector", "model.safetensors"): data, ("acme/private", "model.safetensors"): data},
        private=frozenset({"acme/private"}),
        token="hf_secret",
    )
    yield server
    server.close()
