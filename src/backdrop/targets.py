"""Where `backdrop dlq` and `backdrop redrive` find the queues: a deployed stack, explicit URLs, or local."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any

import boto3

from backdrop.local.stack import LOCAL_NAMES, REGION

LOCAL_ENDPOINT = "http://127.0.0.1:5000"


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
        "--local", action="store_true", help=f"the local stack of `backdrop watch` ({LOCAL_ENDPOINT})"
    )
    where.add_argument("--endpoint-url", help="an AWS endpoint (AWS_ENDPOINT_URL works too)")
    where.add_argument("--region", help="AWS region (default: your configuration's)")
    where.add_argument("--profile", help="AWS profile")


def resolve(args: argparse.Namespace) -> Queues:
    if args.local:
        sqs = boto3.client(
            "sqs",
            endpoint_url=args.endpoint_url or LOCAL_ENDPOINT,
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
                f"no local stack at {args.endpoint_url or LOCAL_ENDPOINT}: "
                "start one with `backdrop watch DIR` "
                f"({type(error).__name__})"
            ) from None
    session = boto3.session.Session(profile_name=args.profile, region_name=args.region)
    sqs = session.client("sqs", endpoint_url=args.endpoint_url)
    if args.dlq_url:
        return Queues(sqs, args.dlq_url, args.work_queue_url)
    try:
        stacks = session.client("cloudformation", endpoint_url=args.endpoint_url).describe_stacks(
            StackName=args.stack
        )
    except Exception as error:
        raise TargetError(
            f"cannot read stack {args.stack!r} ({type(error).__name__}: {error}); "
            "pass --stack NAME, --dlq-url URL or --local"
        ) from None
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stacks["Stacks"][0].get("Outputs", [])}
    if "DeadLetterQueueUrl" not in outputs:
        raise TargetError(f"stack {args.stack!r} has no DeadLetterQueueUrl output: is it a Backdrop stack?")
    return Queues(sqs, outputs["DeadLetterQueueUrl"], outputs.get("WorkQueueUrl"))
