"""The metrics port on Powertools Metrics (CloudWatch embedded metric format)."""

from __future__ import annotations

from aws_lambda_powertools.metrics import Metrics as PowertoolsMetrics
from aws_lambda_powertools.metrics import MetricUnit, single_metric

_UNITS = {"Count": MetricUnit.Count, "Milliseconds": MetricUnit.Milliseconds, "Bytes": MetricUnit.Bytes}


class EmfMetrics:
    def __init__(self, metrics: PowertoolsMetrics) -> None:
        self._metrics = metrics

    def add(self, name: str, value: float, unit: str = "Count") -> None:
        self._metrics.add_metric(name=name, unit=_UNITS[unit], value=value)

    def add_failure(self, error_class: str) -> None:
        # Its own EMF document: the ErrorClass dimension must not spread to the other metrics.
        with single_metric(
            name="ImagesFailed",
            unit=MetricUnit.Count,
            value=1,
            namespace=self._metrics.namespace,
            default_dimensions=self._metrics.default_dimensions,
        ) as metric:
            metric.add_dimension(name="ErrorClass", value=error_class)
