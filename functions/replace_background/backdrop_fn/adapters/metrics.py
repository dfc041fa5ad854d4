"""The metrics port on Powertools Metrics (CloudWatch embedded metric format)."""

from __future__ import annotations

from aws_lambda_powertools.metrics import Metrics as PowertoolsMetrics
from aws_lambda_powertools.metrics import MetricUnit, single_metric

from backdrop_fn.vocabulary import ErrorClass, Metric


class EmfMetrics:
    def __init__(self, metrics: PowertoolsMetrics) -> None:
        self._metrics = metrics

    def add(self, metric: Metric, value: float) -> None:
        self._metrics.add_metric(name=metric.value, unit=MetricUnit(metric.unit.value), value=value)

    def add_failure(self, error_class: ErrorClass) -> None:
        # Counted twice: in total (for the failure-rate alarm: an alarm cannot add up classes), and
        # by class in an EMF document of its own, so that ErrorClass spreads to no other metric.
        self.add(Metric.IMAGES_FAILED, 1)
        with single_metric(
            name=Metric.IMAGES_FAILED.value,
            unit=MetricUnit(Metric.IMAGES_FAILED.unit.value),
            value=1,
            namespace=self._metrics.namespace,
            default_dimensions=self._metrics.default_dimensions,
        ) as metric:
            metric.add_dimension(name="ErrorClass", value=error_class.value)
