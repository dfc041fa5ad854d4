"""A local run's figures, read from the metrics the function itself writes to its log."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from aws_lambda_powertools.metrics import Metrics

from backdrop import figures
from backdrop_fn.adapters.metrics import EmfMetrics
from backdrop_fn.vocabulary import ErrorClass, Metric


def invocation(capsys: pytest.CaptureFixture, log: Path, record) -> None:  # type: ignore[no-untyped-def]
    """One invocation's metrics, flushed by Powertools as the function does, appended to ``log``."""
    powertools = Metrics(namespace="Backdrop", service="backdrop")
    record(EmfMetrics(powertools))
    powertools.flush_metrics()
    with log.open("a", encoding="utf-8") as out:
        out.write('{"level":"INFO","message":"processed"}\n' + capsys.readouterr().out)


def test_the_figures_are_the_function_s_own_counts(tmp_path: Path, capsys: pytest.CaptureFixture):
    log = tmp_path / "function.log"

    def paid(latency: float, credits: float):  # type: ignore[no-untyped-def]
        def record(metrics: EmfMetrics) -> None:
            metrics.add(Metric.API_LATENCY, latency)
            metrics.add(Metric.ESTIMATED_SPEND_USD, 0.075)
            metrics.add(Metric.REMAINING_CREDITS, credits)
            metrics.add(Metric.IMAGES_PROCESSED, 1)

        return record

    def failed(metrics: EmfMetrics) -> None:
        metrics.add(Metric.API_LATENCY, 900)
        metrics.add(Metric.ESTIMATED_SPEND_USD, 0.037)
        metrics.add(Metric.ESTIMATED_SPEND_USD, -0.037)  # a 503: its price given back
        metrics.add_failure(ErrorClass.SERVER_ERROR)
        metrics.add(Metric.DUPLICATES_SKIPPED, 1)

    for number in range(10):
        invocation(capsys, log, paid(100 + 10 * number, 20.0 - number))
    invocation(capsys, log, failed)
    run = figures.read(log)
    assert run.processed == 10
    assert run.failed == {"server_error": 1}  # counted by class, not again in total
    assert sorted(run.latencies_ms) == [100 + 10 * n for n in range(10)] + [900]
    assert round(run.spend_usd, 3) == 0.75
    assert run.credits == 11.0
    assert run.duplicates_skipped == 1
    assert dict(run.rows()) == {
        "Processed (the function's count)": "10",
        "Failed, by class (the function's count)": "server_error: 1",
        "API latency, p50 / p90": "150 ms / 190 ms",
        "Estimated spend (the function's count)": "$0.750",
        "Credits left (as the API said last)": "11.00",
    }


def test_the_timeline_has_what_each_flush_added_and_when(tmp_path: Path, capsys: pytest.CaptureFixture):
    log = tmp_path / "function.log"

    def paid(metrics: EmfMetrics) -> None:
        metrics.add(Metric.API_LATENCY, 120)
        metrics.add(Metric.ESTIMATED_SPEND_USD, 0.075)
        metrics.add(Metric.IMAGES_PROCESSED, 1)

    def refused(metrics: EmfMetrics) -> None:
        metrics.add(Metric.API_LATENCY, 40)
        metrics.add(Metric.API_LATENCY, 60)
        metrics.add_failure(ErrorClass.RATE_LIMITED)

    def duplicate(metrics: EmfMetrics) -> None:
        metrics.add(Metric.DUPLICATES_SKIPPED, 1)

    for record in (paid, duplicate, refused):
        invocation(capsys, log, record)
    run = figures.read(log)
    assert [(m.calls, m.failed, m.spend_usd) for m in run.timeline] == [(1, 0, 0.075), (2, 1, 0.0)]
    first, second = (moment.at for moment in run.timeline)
    assert abs(first - time.time()) < 60
    assert first <= second


def test_a_run_with_no_log_yet_has_nothing_to_show(tmp_path: Path):
    run = figures.read(tmp_path / "function.log")
    assert dict(run.rows())["API latency, p50 / p90"] == "no call answered"
    assert "Credits left (as the API said last)" not in dict(run.rows())
