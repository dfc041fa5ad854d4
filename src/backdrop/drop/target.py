"""Where a drop folder sends its pairs: a deployed stack found by name (its CloudFormation outputs
and parameters), a stack's buckets and DLQ given one by one, or the local stack (local.py)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any

from backdrop import targets
from backdrop.local.stack import LOCAL_NAMES
from backdrop.local.template import load_spec
from backdrop.targets import Catalog, TargetError


@dataclass(frozen=True)
class DropTarget:
    s3: Any
    sqs: Any
    events: Any
    name: str  # for people: "stack backdrop", "the local stack at http://…"
    input_bucket: str
    output_bucket: str
    dlq_url: str
    input_prefix: str = ""  # InputPrefix: the function reads nothing else
    output_prefix: str = ""
    # The bus the stack publishes its completion events on; None when it publishes none (a stack
    # from before the events), which leaves polling.
    event_bus: str | None = "default"
    # With DefaultPrompt, an image without a sidecar is processed, not left waiting.
    default_prompt: bool = False
    # A local stack started for this command: what it has not finished when the command ends is lost
    # with it (and sent again by the next run), where a lasting stack would finish it.
    ends_with_command: bool = False

    def catalog(self) -> Catalog:
        """The same places, as `backdrop status` looks at them."""
        return Catalog(
            self.s3,
            self.sqs,
            self.input_bucket,
            self.output_bucket,
            self.output_prefix,
            self.dlq_url,
            None,
            default_prompt=self.default_prompt,
        )


def add_drop_target_arguments(parser: argparse.ArgumentParser, *, moto_port: bool = True) -> None:
    where = parser.add_argument_group("where the stack is (standard boto3 configuration otherwise)")
    where.add_argument("--stack", help="a deployed stack's name: its buckets, DLQ and event bus")
    where.add_argument(
        "--prefix", default="", help="upload under this prefix (after the stack's InputPrefix)"
    )
    where.add_argument("--input-bucket", help="instead of --stack: the stack's input bucket")
    where.add_argument("--output-bucket", help="instead of --stack: the stack's output bucket")
    where.add_argument("--dlq-url", help="instead of --stack: the stack's dead-letter queue")
    where.add_argument(
        "--event-bus",
        default="default",
        help="with --input-bucket: the stack's EventBusName (default: default); "
        "'none' polls the output bucket and the DLQ instead",
    )
    targets.add_aws_arguments(where, moto_port=moto_port)


def deployed(args: argparse.Namespace) -> DropTarget:
    """The stack named by --stack, or the one given by --input-bucket, --output-bucket, --dlq-url."""
    given = [args.input_bucket, args.output_bucket, args.dlq_url]
    if any(given) and not all(given):
        raise TargetError("--input-bucket, --output-bucket and --dlq-url go together: give all three")
    session = targets.aws_session(args)

    def client(service: str) -> Any:
        return session.client(service, endpoint_url=args.endpoint_url)

    if all(given):
        return DropTarget(
            client("s3"),
            client("sqs"),
            client("events"),
            f"bucket {args.input_bucket}",
            args.input_bucket,
            args.output_bucket,
            args.dlq_url,
            event_bus=None if args.event_bus == "none" else args.event_bus,
        )
    if not args.stack:
        raise TargetError(
            "say where: --stack NAME, or --input-bucket, --output-bucket and --dlq-url, or --local"
        )
    stack = targets.describe_stack(args, session, "DeadLetterQueueUrl", also="--input-bucket …")
    for needed in ("InputBucketName", "OutputBucketName"):
        if needed not in stack.outputs:
            raise TargetError(f"stack {args.stack!r} has no {needed} output: is it a Backdrop stack?")
    return DropTarget(
        client("s3"),
        client("sqs"),
        client("events"),
        f"stack {args.stack}",
        stack.outputs["InputBucketName"],
        stack.outputs["OutputBucketName"],
        stack.outputs["DeadLetterQueueUrl"],
        input_prefix=stack.parameters.get("InputPrefix", ""),
        output_prefix=stack.parameters.get("OutputPrefix", ""),
        event_bus=stack.parameters.get("EventBusName"),
        default_prompt=bool(stack.parameters.get("DefaultPrompt", "").strip()),
    )


def local(args: argparse.Namespace) -> DropTarget:
    """The local stack at --endpoint-url (or --moto-port, AWS_ENDPOINT_URL, :5000), which runs the
    template's defaults; TargetError when none answers there."""
    catalog = targets.resolve_catalog(args)
    parameters = load_spec().parameters
    return DropTarget(
        catalog.s3,
        catalog.sqs,
        targets.client(args, "events"),
        f"the local stack at {targets.local_endpoint(args)}",
        LOCAL_NAMES["InputBucket"],
        LOCAL_NAMES["OutputBucket"],
        catalog.dlq_url,
        event_bus=parameters.get("EventBusName", "default"),
    )
