"""Where `backdrop dlq`, `redrive`, `spend`, `status` and `backfill` find the stack: a deployed one,
explicit URLs, or local."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import boto3
from botocore.config import Config
from botocore.exceptions import NoCredentialsError, NoRegionError, ProfileNotFound

from backdrop.local.stack import LOCAL_NAMES, REGION

_Found = TypeVar("_Found")

LOCAL_PORT = 5000
LOCAL_ENDPOINT = f"http://127.0.0.1:{LOCAL_PORT}"


class TargetError(RuntimeError):
    """The queues could not be found: the message says what to pass."""


@dataclass(frozen=True)
class Queues:
    sqs: Any
    dlq_url: str
    work_queue_url: str | None


@dataclass(frozen=True)
class SpendTable:
    """Where the spend is recorded (the idempotency table), and the caps it is held to."""

    dynamodb: Any
    table: str
    daily_cap_usd: float | None
    monthly_cap_usd: float | None


@dataclass(frozen=True)
class Catalog:
    """Where a stack's images, results and failures are: what `backdrop status` looks at."""

    s3: Any
    sqs: Any
    input_bucket: str
    output_bucket: str
    output_prefix: str
    dlq_url: str
    work_queue_url: str | None
    # With DefaultPrompt, an image without a sidecar is processed, not left waiting.
    default_prompt: bool


@dataclass(frozen=True)
class Deployment:
    """A stack's buckets and work queue, and the settings of its function that decide what a pair
    is, where its output goes and what it costs: what `backdrop backfill` reasons with."""

    s3: Any
    sqs: Any
    region: str
    name: str  # for people: "stack backdrop", "the local stack at http://…"
    work_queue_url: str
    input_bucket: str
    output_bucket: str
    input_prefix: str = ""  # InputPrefix: the function may read nothing else
    output_prefix: str = ""
    default_prompt: str | None = None
    default_rendering_speed: str = "DEFAULT"


def add_target_arguments(parser: argparse.ArgumentParser) -> None:
    where = parser.add_argument_group("where the queues are (standard boto3 configuration otherwise)")
    where.add_argument("--stack", default="backdrop", help="a deployed stack's name (default: backdrop)")
    where.add_argument("--dlq-url", help="the dead-letter queue's URL, instead of --stack")
    where.add_argument("--work-queue-url", help="the work queue's URL, instead of --stack")
    add_aws_arguments(where)


def add_aws_arguments(where: argparse._ActionsContainer, *, moto_port: bool = True) -> None:
    """Which AWS: the local stack, an endpoint, a region and a profile. ``moto_port=False`` for a
    command that has its own --moto-port."""
    where.add_argument(
        "--local",
        action="store_true",
        help="the local stack of `backdrop watch` "
        f"(at --endpoint-url, else AWS_ENDPOINT_URL, else {LOCAL_ENDPOINT})",
    )
    if moto_port:
        where.add_argument(
            "--moto-port",
            type=int,
            help="with --local (implied): the port `backdrop watch --moto-port` gave its local stack",
        )
    where.add_argument("--endpoint-url", help="an AWS endpoint (AWS_ENDPOINT_URL works too)")
    where.add_argument("--region", help="AWS region (default: your configuration's)")
    where.add_argument("--profile", help="AWS profile")


def client(args: argparse.Namespace, service: str) -> Any:
    """A ``service`` client: the local stack's with --local or --moto-port, else your configuration's."""
    if args.local or args.moto_port:
        return _local_client(args, service)
    return _configured(lambda: aws_session(args).client(service, endpoint_url=args.endpoint_url))


def resolve(args: argparse.Namespace) -> Queues:
    return _configured(lambda: _local(args) if args.local or args.moto_port else _deployed(args))


def resolve_spend(args: argparse.Namespace) -> SpendTable:
    return _configured(lambda: _local_spend(args) if args.local or args.moto_port else _deployed_spend(args))


def resolve_catalog(args: argparse.Namespace) -> Catalog:
    return _configured(
        lambda: _local_catalog(args) if args.local or args.moto_port else _deployed_catalog(args)
    )


def resolve_deployment(args: argparse.Namespace, *, connections: int = 10) -> Deployment:
    """``connections``: the HTTP connections each client may hold, one for each thread that uses it."""
    config = Config(max_pool_connections=connections, retries={"mode": "standard"})
    return _configured(
        lambda: (
            _local_deployment(args, config) if args.local or args.moto_port else _deployed_stack(args, config)
        )
    )


def _configured(find: Callable[[], _Found]) -> _Found:
    try:
        return find()
    except NoRegionError:
        raise TargetError(
            "no AWS region is configured: pass --region REGION (or set AWS_REGION), "
            "or --local for the stack of `backdrop watch`"
        ) from None
    except ProfileNotFound as error:
        raise TargetError(f"{error}: pass an existing --profile, or none") from None


def explain(error: Exception) -> str | None:
    """What to do about a boto3 configuration error met while talking to the queues; None for others."""
    if isinstance(error, NoCredentialsError):
        return (
            "no AWS credentials were found: configure them (aws configure, AWS_PROFILE, --profile), "
            "or pass --local for the stack of `backdrop watch`"
        )
    return None


def local_endpoint(args: argparse.Namespace) -> str:
    """--endpoint-url, else --moto-port, else AWS_ENDPOINT_URL, else `backdrop watch`'s default."""
    if args.endpoint_url:
        return str(args.endpoint_url)
    if args.moto_port:
        return f"http://127.0.0.1:{args.moto_port}"
    return os.environ.get("AWS_ENDPOINT_URL") or LOCAL_ENDPOINT


def _local_client(args: argparse.Namespace, service: str, config: Config | None = None) -> Any:
    return boto3.client(
        service,
        endpoint_url=local_endpoint(args),
        region_name=REGION,
        aws_access_key_id="local",
        aws_secret_access_key="local",  # noqa: S106 (moto takes any credentials)
        config=config,
    )


def _no_local_stack(args: argparse.Namespace, error: Exception) -> TargetError:
    return TargetError(
        f"no local stack at {local_endpoint(args)}: start one with `backdrop watch DIR`, "
        f"or pass the --moto-port it prints ({type(error).__name__})"
    )


def _local(args: argparse.Namespace) -> Queues:
    sqs = _local_client(args, "sqs")
    try:
        return Queues(
            sqs,
            sqs.get_queue_url(QueueName=LOCAL_NAMES["DeadLetterQueue"])["QueueUrl"],
            sqs.get_queue_url(QueueName=LOCAL_NAMES["WorkQueue"])["QueueUrl"],
        )
    except Exception as error:
        raise _no_local_stack(args, error) from None


def _local_spend(args: argparse.Namespace) -> SpendTable:
    dynamodb = _local_client(args, "dynamodb")
    table = LOCAL_NAMES["IdempotencyTable"]
    try:
        dynamodb.describe_table(TableName=table)
    except Exception as error:
        raise _no_local_stack(args, error) from None
    return SpendTable(dynamodb, table, None, None)  # `backdrop watch` runs the template's defaults: no cap


def _local_catalog(args: argparse.Namespace) -> Catalog:
    queues = _local(args)
    # `backdrop watch` runs the template's defaults: no output prefix, no default prompt.
    return Catalog(
        _local_client(args, "s3"),
        queues.sqs,
        LOCAL_NAMES["InputBucket"],
        LOCAL_NAMES["OutputBucket"],
        "",
        queues.dlq_url,
        queues.work_queue_url,
        default_prompt=False,
    )


def _deployed_catalog(args: argparse.Namespace) -> Catalog:
    session = aws_session(args)
    stack = describe_stack(args, session, "OutputBucketName")
    return Catalog(
        session.client("s3", endpoint_url=args.endpoint_url),
        session.client("sqs", endpoint_url=args.endpoint_url),
        stack.outputs["InputBucketName"],
        stack.outputs["OutputBucketName"],
        stack.parameters.get("OutputPrefix", ""),
        stack.outputs["DeadLetterQueueUrl"],
        stack.outputs.get("WorkQueueUrl"),
        default_prompt=bool(stack.parameters.get("DefaultPrompt", "").strip()),
    )


def _local_deployment(args: argparse.Namespace, config: Config) -> Deployment:
    """The stack of `backdrop watch`: the local names, and the template's defaults, which it runs."""
    from backdrop.local.template import load_spec  # cfn-lint's loader: only for this command

    sqs = _local_client(args, "sqs", config)
    s3 = _local_client(args, "s3", config)
    try:
        work_queue_url = sqs.get_queue_url(QueueName=LOCAL_NAMES["WorkQueue"])["QueueUrl"]
        s3.head_bucket(Bucket=LOCAL_NAMES["InputBucket"])
    except Exception as error:
        raise _no_local_stack(args, error) from None
    return _deployment(
        s3,
        sqs,
        region=REGION,
        name=f"the local stack at {local_endpoint(args)}",
        outputs={
            "WorkQueueUrl": work_queue_url,
            "InputBucketName": LOCAL_NAMES["InputBucket"],
            "OutputBucketName": LOCAL_NAMES["OutputBucket"],
        },
        parameters=load_spec().parameters,
    )


def _deployed_stack(args: argparse.Namespace, config: Config) -> Deployment:
    session = aws_session(args)
    stack = describe_stack(args, session, "WorkQueueUrl")
    for needed in ("InputBucketName", "OutputBucketName"):
        if needed not in stack.outputs:
            raise TargetError(f"stack {args.stack!r} has no {needed} output: is it a Backdrop stack?")
    return _deployment(
        session.client("s3", endpoint_url=args.endpoint_url, config=config),
        session.client("sqs", endpoint_url=args.endpoint_url, config=config),
        region=session.region_name or REGION,
        name=f"stack {args.stack}",
        outputs=stack.outputs,
        parameters=stack.parameters,
    )


def _deployment(
    s3: Any, sqs: Any, *, region: str, name: str, outputs: dict[str, str], parameters: dict[str, str]
) -> Deployment:
    """The function's settings as the template turns the parameters into its variables."""
    return Deployment(
        s3=s3,
        sqs=sqs,
        region=region,
        name=name,
        work_queue_url=outputs["WorkQueueUrl"],
        input_bucket=outputs["InputBucketName"],
        output_bucket=outputs["OutputBucketName"],
        input_prefix=parameters.get("InputPrefix", ""),
        output_prefix=parameters.get("OutputPrefix", ""),
        default_prompt=parameters.get("DefaultPrompt", "").strip() or None,
        default_rendering_speed=(parameters.get("DefaultRenderingSpeed") or "DEFAULT").upper(),
    )


def _deployed(args: argparse.Namespace) -> Queues:
    session = aws_session(args)
    sqs = session.client("sqs", endpoint_url=args.endpoint_url)
    if args.dlq_url:
        return Queues(sqs, args.dlq_url, args.work_queue_url)
    stack = describe_stack(args, session, "DeadLetterQueueUrl", also="--dlq-url URL")
    return Queues(sqs, stack.outputs["DeadLetterQueueUrl"], stack.outputs.get("WorkQueueUrl"))


def _deployed_spend(args: argparse.Namespace) -> SpendTable:
    session = aws_session(args)
    stack = describe_stack(args, session, "IdempotencyTableName")
    return SpendTable(
        session.client("dynamodb", endpoint_url=args.endpoint_url),
        stack.outputs["IdempotencyTableName"],
        _amount(stack.parameters.get("DailyBudgetUsd")),
        _amount(stack.parameters.get("MonthlyBudgetUsd")),
    )


@dataclass(frozen=True)
class StackDescription:
    outputs: dict[str, str]
    parameters: dict[str, str]


def aws_session(args: argparse.Namespace) -> boto3.session.Session:
    return boto3.session.Session(profile_name=args.profile, region_name=args.region)


def describe_stack(
    args: argparse.Namespace, session: boto3.session.Session, needed: str, *, also: str = ""
) -> StackDescription:
    try:
        stacks = session.client("cloudformation", endpoint_url=args.endpoint_url).describe_stacks(
            StackName=args.stack
        )
    except NoCredentialsError:
        raise
    except Exception as error:
        raise TargetError(
            f"cannot read stack {args.stack!r} ({type(error).__name__}: {error}); "
            f"pass --stack NAME{', ' + also if also else ''} or --local"
        ) from None
    found = stacks["Stacks"][0]
    stack = StackDescription(
        outputs={o["OutputKey"]: o["OutputValue"] for o in found.get("Outputs", [])},
        parameters={p["ParameterKey"]: p.get("ParameterValue", "") for p in found.get("Parameters", [])},
    )
    if needed not in stack.outputs:
        raise TargetError(f"stack {args.stack!r} has no {needed} output: is it a Backdrop stack?")
    return stack


def _amount(text: str | None) -> float | None:
    return float(text) if text else None
