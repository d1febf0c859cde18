"""One detector per process, cached by model version.

A worker or web process calls `DETECTORS.get(key, load)` before every analysis: the first call loads the model,
later calls with the same key reuse it, and a new key (another model was activated) replaces it, so a process
follows model changes without restarting. Loading happens under a lock: concurrent callers wait for one load.
"""

import os
import threading
from collections.abc import Callable

import torch

from ml.detector import Detector


def configure_threads(num_threads: int | None = None, *, processes_per_machine: int = 1) -> int:
    """Size PyTorch's thread pool to this process's share of the CPU cores; returns the number used."""
    if not num_threads:
        num_threads = max(1, (os.cpu_count() or 1) // max(1, processes_per_machine))
    torch.set_num_threads(num_threads)
    return num_threads


class DetectorCache:
    def __init__(self):
        self._lock = threading.Lock()
        self._key: str | None = None
        self._detector: Detector | None = None

    def get(self, key: str, load: Callable[[], Detector]) -> Detector:
        with self._lock:
            if self._key != key or self._detector is None:
                # Drop the old model first, so two models never sit in memory at once.
                self._key, self._detector = None, None
                self._detector = load()
                self._key = key
            return self._detector

    def loaded(self) -> tuple[str, Detector] | None:
        """The key and detector currently loaded, without loading anything."""
        key, detector = self._key, self._detector
        return (key, detector) if key is not None and detector is not None else None

    def clear(self) -> None:
        with self._lock:
            self._key, self._detector = None, None


DETECTORS = DetectorCache()
