"""Lambda entry point: Powertools around the pipeline. Event shapes in, batch response out.

No business rules here: ``backdrop_fn/handling.py`` turns events into work for
``backdrop_fn/pipeline.py``, which decides what happens to each object.

Only Powertools' Logger and Metrics are imported with this module. boto3, requests, pydantic
and the pipeline are imported when the first event arrives, and X-Ray's SDK only when tracing is
on: a cold start then pays for what it uses (bench/ measures it).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger, Metrics

if TYPE_CHECKING:
    from backdrop_fn.runtime import Runtime

# docs/REFERENCE.md#configuration gives these defaults when the variables are not set.
SERVICE = os.environ.get("POWERTOOLS_SERVICE_NAME", "backdrop")
NAMESPACE = os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "Backdrop")
TRACING = os.environ.get("POWERTOOLS_TRACE_DISABLED", "").strip().lower() not in ("1", "true", "yes")

# An invocation that only met S3's test event or ignored keys has nothing to count: not worth a warning.
warnings.filterwarnings("ignore", message="No application metrics to publish")

logger = Logger(service=SERVICE)
metrics = Metrics(service=SERVICE, namespace=NAMESPACE)


@lru_cache(maxsize=1)
def runtime() -> Runtime:
    """Clients and adapters, built once per container on the first event."""
    from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers

    from backdrop_fn.adapters.metrics import EmfMetrics
    from backdrop_fn.wiring import build_runtime

    built = build_runtime(EmfMetrics(metrics))
    copy_config_to_registered_loggers(source_logger=logger, include={"backdrop_fn"})
    return built


def _handle(event: dict[str, Any], context: Any) -> dict[str, Any]:
    from backdrop_fn.handling import handle

    return handle(runtime(), event, context)


def _instrumented(handler: Callable[[dict[str, Any], Any], dict[str, Any]]) -> Callable[..., dict[str, Any]]:
    handler = metrics.log_metrics(handler)
    if TRACING:
        from aws_lambda_powertools import Tracer

        handler = Tracer(service=SERVICE).capture_lambda_handler(handler)
    return logger.inject_lambda_context(clear_state=True)(handler)


lambda_handler = _instrumented(_handle)
