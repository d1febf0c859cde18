"""One kind of client for the load benchmark (python -m loadbench runs it): uploads a photo through the API with
?wait= and records what it saw, end to end, next to the stage timings the analysis itself recorded.

Settings come from the environment (the benchmark sets them): LOADBENCH_IMAGE (a JPEG file), LOADBENCH_TOKEN (an
API token), LOADBENCH_RECORDS (a JSON-lines file to append to), LOADBENCH_WAIT (seconds, default 120).
"""

import json
import os
import time
import uuid
from datetime import datetime

from locust import HttpUser, constant, events, task

IMAGE = open(os.environ["LOADBENCH_IMAGE"], "rb").read()  # noqa: SIM115 (read once per client process)
RECORDS = open(os.environ["LOADBENCH_RECORDS"], "a", encoding="utf-8")  # noqa: SIM115 (closed when locust quits)
HEADERS = {"Authorization": f"Bearer {os.environ['LOADBENCH_TOKEN']}"}
WAIT = int(os.environ.get("LOADBENCH_WAIT", "120"))


def unique_copy(jpeg: bytes) -> bytes:
    """The same picture with a distinct JPEG comment, so every upload is a new file (its own SHA-256)."""
    comment = uuid.uuid4().hex.encode()
    return jpeg[:2] + b"\xff\xfe" + (len(comment) + 2).to_bytes(2, "big") + comment + jpeg[2:]


def seconds_between(start: str | None, end: str | None) -> float | None:
    if not start or not end:
        return None
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds() * 1000


class Uploader(HttpUser):
    wait_time = constant(0)  # each client uploads again as soon as it has its result

    @task
    def upload(self):
        started = time.time()
        with self.client.post(
            f"/api/v1/analyses/?wait={WAIT}",
            files={"file": ("photo.jpg", unique_copy(IMAGE), "image/jpeg")},
            headers=HEADERS,
            name="upload and wait",
            catch_response=True,
        ) as response:
            elapsed_ms = (time.time() - started) * 1000
            body = response.json() if response.headers.get("Content-Type", "").startswith("application/json") else {}
            done = response.status_code == 201 and body.get("status") == "done"
            if not done:
                response.failure(f"{response.status_code} {body.get('status') or body.get('code') or ''}")
            record = {
                "sent_at": started,
                "e2e_ms": elapsed_ms,
                "status_code": response.status_code,
                "analysis": body.get("id"),
                "status": body.get("status"),
                "queue_ms": seconds_between(body.get("created_at"), body.get("started_at")),
                "worker_ms": seconds_between(body.get("started_at"), body.get("finished_at")),
                **(body.get("timings") or {}),
            }
            RECORDS.write(json.dumps(record) + "\n")


@events.quitting.add_listener
def _close(**_kwargs):
    RECORDS.close()
