"""The load benchmark's arithmetic: which requests count, the rate, the percentiles and where the time went."""

import pytest

from loadbench.__main__ import percentile, summarise


def record(sent_at: float, e2e_ms: float, *, status_code: int = 201, status: str = "done") -> dict:
    timings = {"decode_ms": 10, "faces_ms": 20, "inference_ms": 30, "heatmap_ms": 40}
    return {"sent_at": sent_at, "e2e_ms": e2e_ms, "status_code": status_code, "status": status, "queue_ms": 50,
            "worker_ms": 120, **timings}  # fmt: skip


def test_the_warm_up_is_left_out_and_failures_are_errors():
    records = [record(100 + t, 500) for t in (1, 12, 13, 14, 15)] + [record(116, 500, status_code=503, status=None)]

    summary = summarise(records, started=100, seconds=20, warmup=10)

    assert summary["requests"] == 5 and summary["errors"] == 1 and summary["error_codes"] == ["503 None"]
    assert summary["analyses_per_s"] == pytest.approx(4 / 10)  # four finished between seconds 10 and 20
    assert summary["p50_ms"] == 500


def test_only_results_that_arrive_inside_the_window_count_towards_the_rate():
    records = [record(111, 500), record(119, 2000)]  # the second one arrives after the phase ended

    assert summarise(records, started=100, seconds=20, warmup=10)["analyses_per_s"] == pytest.approx(1 / 10)


def test_the_stages_add_up_to_the_time_the_client_waited():
    summary = summarise([record(111, 500)], started=100, seconds=20, warmup=10)

    stages = summary["stages_ms"]
    assert stages["storing_ms"] == 20  # the worker's 120 ms minus the engine's 100
    assert stages["web_ms"] == 330  # 500 minus the queue's 50 and the worker's 120
    assert sum(stages.values()) == 500 == summary["mean_ms"]


def test_percentiles_pick_from_the_sorted_values():
    values = list(range(1, 101))
    assert (percentile(values, 50), percentile(values, 95), percentile(values, 99)) == (51, 95, 99)
