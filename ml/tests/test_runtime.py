"""One detector per process, cached by model version, and safe when several threads analyse at once."""

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch

from conftest import picture
from ml.detector import Detector
from ml.preprocessing import to_batch
from ml.runtime import DetectorCache, configure_threads


def test_one_instance_per_model_version(resnet18_weights):
    path, sha256 = resnet18_weights
    cache = DetectorCache()
    loads = []

    def load():
        loads.append(1)
        return Detector.from_weights(path, architecture="resnet18", expected_sha256=sha256, backend="torch")

    first = cache.get("model-1", load)
    again = cache.get("model-1", load)

    assert first is again and len(loads) == 1
    assert cache.loaded() == ("model-1", first)


def test_a_new_version_replaces_the_cached_detector():
    cache = DetectorCache()
    old, new = object(), object()

    assert cache.get("v1", lambda: old) is old
    assert cache.get("v2", lambda: new) is new
    assert cache.loaded() == ("v2", new)
    assert cache.get("v1", lambda: "reloaded") == "reloaded"  # going back loads again: one model in memory at a time


def test_concurrent_callers_share_one_load():
    cache = DetectorCache()
    callers = 8
    start, loading, release = threading.Barrier(callers), threading.Event(), threading.Event()
    loads = []

    def load():
        loads.append(threading.get_ident())
        loading.set()
        release.wait()  # hold the load open while the other callers arrive
        return object()

    def call():
        start.wait()
        return cache.get("model-1", load)

    with ThreadPoolExecutor(callers) as pool:
        futures = [pool.submit(call) for _ in range(callers)]
        assert loading.wait(30)
        release.set()
        detectors = [future.result(timeout=30) for future in futures]

    assert len(loads) == 1
    assert all(detector is detectors[0] for detector in detectors)


def test_a_failed_load_leaves_nothing_cached_and_is_retried():
    cache = DetectorCache()

    def broken():
        raise RuntimeError("weights are gone")

    with pytest.raises(RuntimeError, match="weights are gone"):
        cache.get("model-1", broken)
    assert cache.loaded() is None
    assert cache.get("model-1", lambda: "loaded") == "loaded"


@pytest.fixture(scope="module")
def batches():
    return [to_batch([picture(200 + 10 * i, 150, seed=i)], 112) for i in range(6)]


@pytest.mark.parametrize("backend", ["torch", "openvino"])
def test_concurrent_analyses_give_the_same_results_as_one_at_a_time(resnet18, batches, backend):
    detector = Detector(resnet18, architecture="resnet18", input_size=112, backend=backend, precision="fp32")
    expected = [detector.analyze(batch)[0] for batch in batches]

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda batch: detector.analyze(batch)[0], batches * 3))

    for result, reference in zip(results, expected * 3, strict=True):
        assert result.probability_fake == pytest.approx(reference.probability_fake, abs=1e-6)
        assert np.abs(result.heatmap - reference.heatmap).max() <= 1e-5


def test_configure_threads_shares_the_cores_between_processes():
    before = torch.get_num_threads()
    try:
        assert configure_threads(3) == 3 and torch.get_num_threads() == 3
        shared = configure_threads(processes_per_machine=1000)
        assert shared == 1 and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
