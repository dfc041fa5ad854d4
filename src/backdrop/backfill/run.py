"""One backfill run: plan, show, ask, send, sum up (docs/REFERENCE.md#backfill).

Ctrl-C (or SIGTERM) while planning or sending sets a flag that the work checks between images
and between batches: the batch on its way is finished and recorded, the summary is printed,
and the ledger holds exactly what SQS accepted. A second Ctrl-C stops at once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError
from rich.console import Console

from backdrop import terminal
from backdrop.backfill import bucket, ledger, manifest
from backdrop.backfill.assess import Assessor, StackSettings
from backdrop.backfill.ledger import Ledger, Work
from backdrop.backfill.plan import Plan, make_plan
from backdrop.backfill.report import Summary, plan_view, summary_view
from backdrop.backfill.send import BATCH, Sender
from backdrop.backfill.walk import Listed, PairingWalk
from backdrop.targets import Deployment, TargetError
from backdrop.terminal import (
    INTERRUPTED,
    Ask,
    confirmation,
    over_max_cost,
)
from backdrop_fn.adapters.s3 import S3ObjectStore

OK = 0
NOT_ALL_SENT = 1  # entries SQS refused, or a call that failed: a run again sends them
# The work queue's retention when it cannot be read: the template's 14 days.
_RETENTION_SECONDS = 14 * 24 * 3600
_PROGRESS_EVERY = 200  # verdicts between two updates of the planning line


@dataclass(frozen=True)
class Request:
    prefix: str = ""
    manifest: Path | None = None
    dry_run: bool = False
    yes: bool = False
    max_cost_usd: float | None = None
    resend: bool = False
    concurrency: int = 16
    ledger_path: Path | None = None


@dataclass(frozen=True)
class Finished:
    code: int  # the command's exit code
    plan: Plan
    summary: Summary | None  # None when nothing was to be sent: refused, dry run, interrupted


def backfill(stack: Deployment, request: Request, console: Console, *, ask: Ask) -> Finished:
    """The whole run. A manifest that cannot be used raises ManifestError before anything else, and a
    prefix outside the stack's InputPrefix raises TargetError."""
    request = replace(request, prefix=_listed_under(stack, request.prefix))
    rows = manifest.read_rows(request.manifest) if request.manifest else None
    path = request.ledger_path or ledger.default_path(stack.work_queue_url, stack.input_bucket)
    book = Ledger(path, remember_seconds=_retention(stack))
    try:
        return _run(stack, request, rows, console, ask, book)
    finally:
        book.close()


def _run(
    stack: Deployment,
    request: Request,
    rows: Iterator[manifest.Row] | None,
    console: Console,
    ask: Ask,
    book: Ledger,
) -> Finished:
    stop = threading.Event()
    started = time.monotonic()
    plan = Plan()
    failure = None
    try:
        with terminal.stopped_by_signals(stop):
            _plan(stack, request, rows, book, plan, console, stop)
    except KeyboardInterrupt:  # a second Ctrl-C: what was judged so far is shown
        plan.complete = False
    except (ClientError, BotoCoreError) as error:  # a listing refused or failed, after boto3's retries
        if isinstance(error, NoCredentialsError):
            raise
        failure = error
    plan.seconds = time.monotonic() - started
    console.print(plan_view(plan, _source(stack, request), book.path))
    if failure is not None:
        console.print(f"[red]Planning stopped: {failure}[/]\nNothing was sent.")
        return Finished(NOT_ALL_SENT, plan, None)
    if not plan.complete:
        console.print("[yellow]Interrupted while planning: nothing was sent.[/]")
        return Finished(INTERRUPTED, plan, None)
    refusal = _refusal(plan, request, ask)
    if refusal is not None:
        code, message = refusal
        console.print(message)
        return Finished(code, plan, None)
    summary = _send(stack, plan, book, console, stop)
    console.print(summary_view(summary))
    if summary.interrupted:
        return Finished(INTERRUPTED, plan, summary)
    return Finished(NOT_ALL_SENT if summary.failed or summary.not_sent else OK, plan, summary)


def _source(stack: Deployment, request: Request) -> str:
    where = f"s3://{stack.input_bucket}/{request.prefix}"
    read = f"manifest {request.manifest} for {where}" if request.manifest else where
    return f"{read} → work queue of {stack.name}"


def _refusal(plan: Plan, request: Request, ask: Ask) -> tuple[int, str] | None:
    """Why not to send (an exit code and what to say), or None to go on."""
    cost = plan.cost_usd()
    if plan.to_send == 0:
        return OK, "Nothing to send."
    refused = over_max_cost(cost, request.max_cost_usd, "Send less (--prefix, a shorter manifest)")
    if refused is not None:
        return refused
    if request.dry_run:
        return OK, "Dry run: nothing was sent."
    return confirmation(plan.to_send, cost, yes=request.yes, ask=ask, where="the work queue")


def _retention(stack: Deployment) -> float:
    """How long a message can wait in the work queue: the ledger's memory of what was sent."""
    try:
        attributes = stack.sqs.get_queue_attributes(
            QueueUrl=stack.work_queue_url, AttributeNames=["MessageRetentionPeriod"]
        )["Attributes"]
        return float(attributes["MessageRetentionPeriod"])
    except (ClientError, BotoCoreError, KeyError, ValueError):
        return _RETENTION_SECONDS


# -- planning -------------------------------------------------------------------------------------


def _plan(
    stack: Deployment,
    request: Request,
    rows: Iterator[manifest.Row] | None,
    book: Ledger,
    plan: Plan,
    console: Console,
    stop: threading.Event,
) -> Plan:
    settings = _settings(stack)
    store = S3ObjectStore(stack.s3)
    with terminal.progress(console) as shown:
        line = shown.add_task("Planning", total=None)

        def progress(plan: Plan) -> None:
            judged = sum(plan.outcomes.values())
            if judged % _PROGRESS_EVERY == 0:
                shown.update(line, description=_planning_line(plan, judged))

        if rows is not None:
            assessor = Assessor(store, settings, book, outputs_indexed=False, resend=request.resend)
            return make_plan(
                _counted(rows, plan, book),
                assessor.row,
                book,
                plan,
                workers=request.concurrency,
                stop=stop,
                progress=progress,
            )
        shown.update(line, description=f"Listing the outputs in s3://{settings.output_bucket}")
        book.index_outputs(
            bucket.keys_under(stack.s3, settings.output_bucket, _outputs_prefix(settings, request.prefix))
        )
        walk = PairingWalk()
        plan.walk = walk.counts
        assessor = Assessor(store, settings, book, outputs_indexed=True, resend=request.resend)
        listing = bucket.listing(stack.s3, settings.bucket, request.prefix)
        found = walk.pairs(_inputs_only(listing, settings, plan))
        return make_plan(
            found, assessor.listed, book, plan, workers=request.concurrency, stop=stop, progress=progress
        )


def _settings(stack: Deployment) -> StackSettings:
    return StackSettings(
        bucket=stack.input_bucket,
        output_bucket=stack.output_bucket,
        output_prefix=stack.output_prefix,
        default_prompt=stack.default_prompt,
        default_speed=stack.default_rendering_speed,
        input_prefix=stack.input_prefix,
    )


def _listed_under(stack: Deployment, prefix: str) -> str:
    """Where to list: ``prefix``, narrowed to InputPrefix, which the function may not read beyond."""
    if prefix.startswith(stack.input_prefix):
        return prefix
    if stack.input_prefix.startswith(prefix):
        return stack.input_prefix
    raise TargetError(
        f"--prefix {prefix!r} is outside the stack's InputPrefix {stack.input_prefix!r}: "
        "the function may read only under it"
    )


def _inputs_only(listing: Iterable[Listed], settings: StackSettings, plan: Plan) -> Iterator[Listed]:
    """The listing without the results a stack keeps beside its inputs (OutputToInputBucket)."""
    for listed in listing:
        if settings.not_an_input(listed.key) is None:
            yield listed
        else:
            plan.results_skipped += 1


def _outputs_prefix(settings: StackSettings, prefix: str) -> str:
    """Where the outputs of the images under ``prefix`` can be: its folder, under OUTPUT_PREFIX (a
    prefix that ends inside an image's extension would not be the start of its output's key)."""
    return settings.output_prefix + prefix[: prefix.rfind("/") + 1]


def _planning_line(plan: Plan, judged: int) -> str:
    listed = f"{plan.walk.objects:,} objects listed, " if plan.walk else f"{plan.rows:,} rows read, "
    return f"Planning: {listed}{judged:,} images judged, {plan.to_send:,} to send (${plan.cost_usd():,.3f})"


def _counted(rows: Iterable[manifest.Row], plan: Plan, book: Ledger) -> Iterator[manifest.Row]:
    """The rows, counted; a row naming a key an earlier row named is made a problem here, in the
    file's order, before the rows are judged on several threads at once."""
    for row in rows:
        plan.rows += 1
        first = book.first_line_of(row.key, row.line) if row.key else None
        yield row if first is None else replace(row, fields=None, problem=f"repeats line {first}")


# -- sending ---------------------------------------------------------------------------------------


def _send(stack: Deployment, plan: Plan, book: Ledger, console: Console, stop: threading.Event) -> Summary:
    sender = Sender(stack.sqs, stack.work_queue_url, stack.s3, stack.input_bucket, stack.region)
    summary = Summary(plan)
    started = time.monotonic()
    with terminal.stopped_by_signals(stop), terminal.progress(console, bar=True) as shown:
        line = shown.add_task("Sending", total=plan.to_send)
        try:
            for batch in _batches(book.planned(), BATCH):
                if stop.is_set():
                    summary.interrupted = True
                    summary.stopped = "interrupted (Ctrl-C): a run again sends them"
                    break
                result = sender.send(batch)
                book.record_sent(result.sent)
                summary.add(result.sent, result.failed)
                shown.advance(line, len(batch))
        except (ClientError, BotoCoreError) as error:
            summary.stopped = f"stopped: {error}"
        except KeyboardInterrupt:  # the second Ctrl-C: the batch on its way may be sent, unrecorded
            summary.interrupted = True
            summary.stopped = "interrupted at once: the last batch may be sent again next time (at no cost)"
    summary.seconds = time.monotonic() - started
    return summary


def _batches(works: Iterable[Work], size: int) -> Iterator[list[Work]]:
    batch: list[Work] = []
    for work in works:
        batch.append(work)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
