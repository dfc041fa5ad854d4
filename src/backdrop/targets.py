"""Where `backdrop dlq` and `backdrop redrive` find the queues: a deployed stack, explicit URLs, or local."""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.exceptions import NoCredentialsError, NoRegionError, ProfileNotFound

from backdrop.local.stack import LOCAL_NAMES, REGION

LOCAL_PORT = 5000
LOCAL_ENDPOINT = f"http://127.0.0.1:{LOCAL_PORT}"


class TargetError(RuntimeError):
    """The queues could not be found: the message says what to pass."""


@dataclass(frozen=True)
class Queues:
    sqs: Any
    dlq_url: str
    work_queue_url: str | None


def add_target_arguments(parser: argparse.ArgumentParser) -> None:
    where = parser.add_argument_group("where the queues are (standard boto3 configuration otherwise)")
    where.add_argument("--stack", default="backdrop", help="a deployed stack's name (default: backdrop)")
    where.add_argument("--dlq-url", help="the dead-letter queue's URL, instead of --stack")
    where.add_argument("--work-queue-url", help="the work queue's URL, instead of --stack")
    where.add_argument(
        "--local",
        action="store_true",
        help="the local stack of `backdrop watch` "
        f"(at --endpoint-url, else AWS_ENDPOINT_URL, else {LOCAL_ENDPOINT})",
    )
    where.add_argument(
        "--moto-port",
        type=int,
        help="with --local (implied): the port `backdrop watch --moto-port` gave its local stack",
    )
    where.add_argument("--endpoint-url", help="an AWS endpoint (AWS_ENDPOINT_URL works too)")
    where.add_argument("--region", help="AWS region (default: your configuration's)")
    where.add_argument("--profile", help="AWS profile")


def resolve(args: argparse.Namespace) -> Queues:
    try:
        return _local(args) if args.local or args.moto_port else _deployed(args)
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


def _local(args: argparse.Namespace) -> Queues:
    endpoint = local_endpoint(args)
    sqs = boto3.client(
        "sqs",
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id="local",
        aws_secret_access_key="local",  # noqa: S106 (moto takes any credentials)
    )
    try:
        return Queues(
            sqs,
            sqs.get_queue_url(QueueName=LOCAL_NAMES["DeadLetterQueue"])["QueueUrl"],
            sqs.get_queue_url(QueueName=LOCAL_NAMES["WorkQueue"])["QueueUrl"],
        )
    except Exception as error:
        raise TargetError(
            f"no local stack at {endpoint}: start one with `backdrop watch DIR`, "
            f"or pass the --moto-port it prints ({type(error).__name__})"
        ) from None


def _deployed(args: argparse.Namespace) -> Queues:
    session = boto3.session.Session(profile_name=args.profile, region_name=args.region)
    sqs = session.client("sqs", endpoint_url=args.endpoint_url)
    if args.dlq_url:
        return Queues(sqs, args.dlq_url, args.work_queue_url)
    try:
        stacks = session.client("cloudformation", endpoint_url=args.endpoint_url).describe_stacks(
            StackName=args.stack
        )
    except NoCredentialsError:
        raise
    except Exception as error:
        raise TargetError(
            f"cannot read stack {args.stack!r} ({type(error).__name__}: {error}); "
            "pass --stack NAME, --dlq-url URL or --local"
        ) from None
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stacks["Stacks"][0].get("Outputs", [])}
    if "DeadLetterQueueUrl" not in outputs:
        raise TargetError(f"stack {args.stack!r} has no DeadLetterQueueUrl output: is it a Backdrop stack?")
    return Queues(sqs, outputs["DeadLetterQueueUrl"], outputs.get("WorkQueueUrl"))
