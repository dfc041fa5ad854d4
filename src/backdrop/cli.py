"""The ``backdrop`` command (docs/REFERENCE.md#the-command-line)."""

from __future__ import annotations

import argparse
import contextlib
import signal
import socket
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

from botocore.exceptions import ClientError
from rich.console import Console
from rich.markup import escape
from rich.prompt import Confirm
from rich.table import Table

from backdrop import bucket_events, dead_letters, figures, spend, targets
from backdrop.drop.local import add_local_start_arguments
from backdrop.drop.target import add_drop_target_arguments
from backdrop.emulator import Emulator, EmulatorSettings
from backdrop.emulator.faults import KINDS as FAULT_KINDS
from backdrop.terminal import INTERRUPTED


def parse_faults(text: str) -> dict[str, float]:
    """``429=0.2,500=0.05,timeout=0.02`` → probabilities by fault kind."""
    faults: dict[str, float] = {}
    for part in filter(None, (piece.strip() for piece in text.split(","))):
        kind, _, value = part.partition("=")
        if kind not in FAULT_KINDS:
            raise argparse.ArgumentTypeError(f"unknown fault {kind!r}: use {', '.join(sorted(FAULT_KINDS))}")
        try:
            probability = float(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{part!r}: the probability must be a number") from None
        if not 0 <= probability <= 1:
            raise argparse.ArgumentTypeError(f"{part!r}: the probability must be between 0 and 1")
        faults[kind] = probability
    if sum(faults.values()) > 1:
        raise argparse.ArgumentTypeError("the fault probabilities add up to more than 1")
    return faults


def _emulator(args: argparse.Namespace) -> int:
    settings = EmulatorSettings(
        api_keys=set(args.key),
        credits=args.credits,
        output_format=args.format,
        latency_seconds=args.latency,
        faults=args.fail,
        requests_per_minute=args.rpm,
        rate_window_seconds=args.rate_window,
        echo=args.echo,
        random_seed=args.seed,
        timeout_stall_seconds=args.stall,
        drip_interval_seconds=args.drip_interval,
    )
    emulator = Emulator(settings, port=args.port).start()
    print(f"Segmind emulator (offline test double, not the real model) on {emulator.url}")
    print(f"accepted x-api-key: {', '.join(sorted(settings.api_keys))}   Ctrl-C to stop")
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    with contextlib.suppress(KeyboardInterrupt):
        stopped.wait()
    emulator.stop()
    print(
        f"served {len(emulator.requests)} requests, "
        f"billed {emulator.billed_calls} (${emulator.spent_usd:.3f})"
    )
    return 0


def _demo(args: argparse.Namespace) -> int:
    from backdrop.demo.run import run_demo  # loads the local stack: only for this command

    return run_demo(Path(args.out), latency=args.latency, settle_seconds=args.settle)


def _watch(args: argparse.Namespace) -> int:
    from backdrop.console import function_output_to
    from backdrop.watch import ExistingBucket, watch

    if args.local or args.stack or args.input_bucket or args.output_bucket or args.dlq_url:
        return _watch_stack(args)
    problem = _busy_port(("--moto-port", args.moto_port), ("--api-port", args.api_port))
    if args.outputs_in_bucket and not (args.existing_bucket and args.output_prefix):
        # As the template's Rules refuse it: results among the inputs would be taken for inputs.
        problem = "--outputs-in-bucket needs --existing-bucket and a non-empty --output-prefix"
    if problem:
        Console(stderr=True).print(f"[red]cannot start the local stack:[/] {problem}")
        return 2
    folder = Path(args.folder).resolve()
    out = Path(args.out).resolve() if args.out else folder / "out"
    stop = threading.Event()
    log = out / "function.log"
    with function_output_to(log) as console:
        try:
            counts = _run_until_stopped(
                lambda: watch(
                    folder,
                    out,
                    console,
                    stop=stop,
                    moto_port=args.moto_port,
                    api_port=args.api_port,
                    function_log=log,
                    webhook=args.webhook,
                    webhook_authorization=args.webhook_authorization,
                    existing=ExistingBucket(
                        args.existing_bucket, args.input_prefix, args.output_prefix, args.outputs_in_bucket
                    )
                    if args.existing_bucket
                    else None,
                ),
                stop,
            )
        except OSError as error:  # a port taken between the check and the start, say
            console.print(f"[red]cannot start the local stack: {error}[/]")
            return 1
        console.print(
            f"stopped: {counts['uploaded']} uploaded, {counts['processed']} processed, "
            f"{counts['failed']} failed, {counts['api_calls']} API calls, "
            f"{counts['events']} completion events"
            + (f", {counts['skipped']} unchanged skipped" if counts.get("skipped") else "")
        )
        console.print(_figures_table(figures.read(log)))
    return 0


def _watch_stack(args: argparse.Namespace) -> int:
    from backdrop.drop.watching import summary_line, watch_stack

    stop = threading.Event()
    with _drop_folder(args) as drop:
        counts = _run_until_stopped(lambda: watch_stack(drop, stop=stop), stop)
        drop.console.print(summary_line(drop, counts))
    return 0


def _run(args: argparse.Namespace) -> int:
    from backdrop.drop.run import RunRequest, run_folder

    request = RunRequest(yes=args.yes, max_cost_usd=args.max_cost, timeout_seconds=args.timeout)
    try:
        with _drop_folder(args) as drop:
            return run_folder(
                drop, request, drop.console, ask=lambda question: _confirm(drop.console, question)
            )
    except KeyboardInterrupt:  # before the sending began (while looking at the folder): nothing sent
        Console(stderr=True).print("Interrupted before anything was sent.")
        return INTERRUPTED


@contextlib.contextmanager
def _drop_folder(args: argparse.Namespace) -> Iterator[Any]:
    """The folder against its stack, with a way to learn outcomes that is taken away at the end:
    the local stack answering at --local's port, or one started for the command (the function's
    output then goes to DIR/out/function.log), or the deployed stack."""
    from backdrop.console import function_output_to
    from backdrop.drop import local, target
    from backdrop.drop.outcomes import subscribe
    from backdrop.drop.stack_folder import StackFolder

    folder = Path(args.folder).resolve()
    out = Path(args.out).resolve() if args.out else folder / "out"
    if not folder.is_dir():
        raise targets.TargetError(f"no folder {folder}")
    with contextlib.ExitStack() as ending:
        where = local.running(args) if args.local else target.deployed(args)
        console = _console()
        if where is None:
            console = ending.enter_context(function_output_to(out / "function.log"))
            console.print(
                f"No local stack at {targets.local_endpoint(args)}: starting one for this command "
                f"(emulated API {args.api_latency:g} s a call; the function's log: {out / 'function.log'})."
            )
            where = ending.enter_context(local.started(args))
        outcomes, why_not = subscribe(where, where.input_prefix + args.prefix)
        ending.callback(outcomes.close)
        if why_not:
            console.print(f"[yellow]No completion events ({escape(why_not)}): polling instead.[/]")
        yield StackFolder(where, folder, out, console, outcomes, prefix=args.prefix)


def _figures_table(run: figures.RunFigures) -> Table:
    table = Table(title="This run, as the function counted it", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column(justify="right")
    for label, value in run.rows():
        table.add_row(label, value)
    return table


def _busy_port(*ports: tuple[str, int]) -> str | None:
    """Why the stack cannot listen where asked, or None. Checked first: moto, on a busy port,
    would wait for its server forever, and the emulator would fail in a thread."""
    (first_flag, first), (second_flag, second) = ports
    if first and first == second:
        return f"{first_flag} and {second_flag} are both {first}: give them different ports"
    for flag, port in ports:
        if port and not _can_listen(port):
            return (
                f"port {port} is in use (another `backdrop watch`, or another program): "
                f"stop it, or pass {flag} PORT to use another port"
            )
    return None


def _can_listen(port: int) -> bool:
    with socket.socket() as probe:
        # As the servers do: a port left in TIME_WAIT by an earlier run is free, a listener is not.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _run_until_stopped(work: Callable[[], dict[str, Any]], stop: threading.Event) -> dict[str, Any]:
    """Run ``work`` in a thread until it returns; Ctrl-C and SIGTERM set ``stop``, which it watches.

    The signals set a flag instead of raising KeyboardInterrupt: on Python 3.11 and 3.12 an
    interrupted ``Thread.join`` leaves the thread looking finished, and the next ``join`` returns
    at once, before the work has stopped.
    """
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["result"] = work()
        except BaseException as error:  # handed to the main thread, raised there
            outcome["error"] = error

    worker = threading.Thread(target=run, name="backdrop-watch", daemon=True)
    previous = {number: signal.signal(number, lambda *_: stop.set()) for number in _STOP_SIGNALS}
    try:
        worker.start()
        while worker.is_alive():
            worker.join(0.5)
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
    if "error" in outcome:
        raise outcome["error"]
    return dict(outcome["result"])


_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _console() -> Console:
    # Piped into a file or a CI log, a table is read later: give it room instead of 80 columns.
    return Console() if sys.stdout.isatty() else Console(width=200)


def _dlq(args: argparse.Namespace) -> int:
    console = _console()
    queues = targets.resolve(args)
    letters = dead_letters.read_all(queues.sqs, queues.dlq_url)
    dead_letters.release(queues.sqs, queues.dlq_url, letters)
    if args.error_class:
        letters = [letter for letter in letters if letter.error_class == args.error_class]
    if not letters:
        console.print(
            f"The DLQ is empty{' for ' + args.error_class if args.error_class else ''}: nothing failed."
        )
        return 0
    # Every failure of one class asked for; otherwise the first few of each, the rest counted.
    limit = None if args.error_class else KEYS_PER_CLASS
    console.print(_failure_table(letters, f"{len(letters)} failures in {queues.dlq_url}", limit))
    console.print(
        "Fix the cause, then `backdrop redrive [--error-class CLASS]` sends them back to be processed."
    )
    return 0


KEYS_PER_CLASS = 20


def _failure_table(letters: list[dead_letters.DeadLetter], title: str, limit: int | None) -> Table:
    """One row per failure, grouped by class (the largest first), oldest first within a class."""
    table = Table(title=title, title_justify="left")
    for column in ("class", "count", "key", "failed at", "message"):
        table.add_column(column, overflow="fold")
    for row in dead_letters.summarise(letters):
        shown = row.letters if limit is None else row.letters[:limit]
        for number, letter in enumerate(shown):
            first = number == 0
            table.add_row(
                row.error_class if first else "",
                str(row.count) if first else "",
                letter.key,
                letter.failed_at,
                letter.message,
            )
        if len(shown) < row.count:
            table.add_row(
                "",
                "",
                f"… and {row.count - len(shown)} more",
                "",
                f"backdrop dlq --error-class {row.error_class}",
            )
        table.add_section()
    return table


def _redrive(args: argparse.Namespace) -> int:
    console = _console()
    queues = targets.resolve(args)
    if not queues.work_queue_url:
        console.print("[red]the work queue's URL is unknown: pass --work-queue-url or --stack[/]")
        return 2
    result = dead_letters.redrive(
        queues.sqs, queues.dlq_url, queues.work_queue_url, error_class=args.error_class, dry_run=args.dry_run
    )
    verb = "would move" if args.dry_run else "moved"
    moved = sum(result.moved.values())
    detail = ", ".join(f"{cls}: {n}" for cls, n in sorted(result.moved.items())) or "nothing"
    console.print(
        f"{verb} {moved} message(s) to the work queue ({detail}); {sum(result.kept.values())} left."
    )
    return 0


def _spend(args: argparse.Namespace) -> int:
    where = targets.resolve_spend(args)
    _console().print(spend.table(spend.read(where), where))
    return 0


def _backfill(args: argparse.Namespace) -> int:
    from backdrop.backfill.manifest import ManifestError  # the function's parser: only for this command
    from backdrop.backfill.run import Request, backfill

    console = _console()
    target = targets.resolve_deployment(args, connections=args.concurrency + 2)
    request = Request(
        prefix=args.prefix,
        manifest=Path(args.manifest) if args.manifest else None,
        dry_run=args.dry_run,
        yes=args.yes,
        max_cost_usd=args.max_cost,
        resend=args.resend,
        concurrency=args.concurrency,
        ledger_path=Path(args.ledger) if args.ledger else None,
    )
    try:
        return backfill(target, request, console, ask=lambda question: _confirm(console, question)).code
    except ManifestError as error:
        Console(stderr=True).print(f"[red]{error}[/]")
        return 2


def _confirm(console: Console, question: str) -> bool | None:
    """The answer of the person at the terminal; None when there is none to ask (a pipe, a CI job)."""
    if not sys.stdin.isatty():
        return None
    try:
        return Confirm.ask(question, console=console, default=False)
    except (KeyboardInterrupt, EOFError):
        return False


def _status(args: argparse.Namespace) -> int:
    from backdrop.status import standing

    found = standing(targets.resolve_catalog(args), args.image_key)
    table = Table(title=f"{args.image_key}: {found.state}", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    for label, value in [*found.facts, ("next", found.next_step)]:
        table.add_row(label, value)
    _console().print(table)
    return 0


def _enable_eventbridge(args: argparse.Namespace) -> int:
    console = _console()
    try:
        done = bucket_events.enable_eventbridge(targets.client(args, "s3"), args.bucket, dry_run=args.dry_run)
    except ClientError as error:
        console.print(f"[red]bucket {args.bucket}: {error}[/]")
        return 2
    kept = ", ".join(f"{count} {kind}" for kind, count in sorted(done.kept.items())) or "none"
    if done.already_on:
        console.print(f"EventBridge delivery is already on for {done.bucket}: nothing written.")
    elif done.written:
        console.print(f"EventBridge delivery is on for {done.bucket}. Its other notifications, kept: {kept}.")
    else:
        console.print(
            f"Would turn EventBridge delivery on for {done.bucket}, keeping its other notifications: {kept}."
        )
    return 0


def _add_error_class(parser: argparse.ArgumentParser) -> None:
    # A typo is refused, with the list, rather than matching nothing.
    classes = ", ".join(dead_letters.ERROR_CLASSES)
    parser.add_argument(
        "--error-class",
        choices=dead_letters.ERROR_CLASSES,
        metavar="CLASS",
        help=f"only this class: {classes}",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="backdrop", description="Backdrop: replace image backgrounds on S3."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    emulator = commands.add_parser(
        "emulator", help="serve the offline Segmind-compatible emulator on loopback"
    )
    emulator.add_argument("--port", type=int, default=8080)
    emulator.add_argument("--key", action="append", default=None, help="an accepted x-api-key (repeatable)")
    emulator.add_argument("--credits", type=float, default=None, help="credits in USD; 406 when spent")
    emulator.add_argument(
        "--format", choices=("png", "jpeg", "webp"), default="png", help="answer image type"
    )
    emulator.add_argument("--latency", type=float, default=0.0, help="seconds added to every successful call")
    emulator.add_argument(
        "--fail",
        type=parse_faults,
        default={},
        help="e.g. 429=0.2,500=0.05,timeout=0.02,hangup=0.01 (kinds: " + ", ".join(sorted(FAULT_KINDS)) + ")",
    )
    emulator.add_argument(
        "--stall", type=float, default=30.0, help="seconds of silence of a timeout or stall fault"
    )
    emulator.add_argument(
        "--drip-interval", type=float, default=2.0, help="seconds between the pieces of a drip fault"
    )
    emulator.add_argument("--rpm", type=int, default=None, help="requests a minute before 429")
    emulator.add_argument("--rate-window", type=float, default=60.0, help="the rate limit's window, seconds")
    emulator.add_argument("--echo", action="store_true", help="answer with the input image (for benchmarks)")
    emulator.add_argument("--seed", type=int, default=None, help="seed of the fault injection")
    emulator.set_defaults(handler=_emulator)

    demo = commands.add_parser(
        "demo", help="run the whole pipeline offline on sample photos; results in ./out/"
    )
    demo.add_argument("--out", default="out", help="where results and the contact sheet go (default: ./out)")
    demo.add_argument("--latency", type=float, default=0.5, help="emulated API seconds per call")
    demo.add_argument(
        "--settle",
        type=int,
        default=2,
        help="PairSettleSeconds: how long an image without a sidecar waits before DEFAULT_PROMPT is used",
    )
    demo.set_defaults(handler=_demo)

    watch = commands.add_parser("watch", help="process images and sidecars dropped into a folder, offline")
    watch.add_argument("folder")
    watch.add_argument("--out", help="where results go (default: FOLDER/out)")
    watch.add_argument(
        "--moto-port", type=int, default=5000, help="local AWS endpoint port (events/env.json: 5000)"
    )
    watch.add_argument("--api-port", type=int, default=8080, help="emulator port (events/env.json: 8080)")
    mine = watch.add_argument_group("your own bucket (the template's ExistingInputBucket), locally")
    mine.add_argument("--existing-bucket", metavar="NAME", help="take inputs from a stand-in for this bucket")
    mine.add_argument("--input-prefix", default="", help="upload under this prefix (InputPrefix)")
    mine.add_argument("--output-prefix", default="", help="results under this prefix (OutputPrefix)")
    mine.add_argument(
        "--outputs-in-bucket",
        action="store_true",
        help="results into that same bucket, under --output-prefix (OutputToInputBucket=true)",
    )
    watch.add_argument(
        "--webhook",
        metavar="URL",
        help="POST each completion event's detail here, as the stack's WebhookUrl would get it",
    )
    watch.add_argument(
        "--webhook-authorization",
        default="Backdrop",
        metavar="VALUE",
        help="the webhook's Authorization header, as WebhookSecretArn's value on the stack "
        "(default: Backdrop)",
    )
    add_drop_target_arguments(watch, moto_port=False)
    add_local_start_arguments(watch, api_port=False)
    watch.set_defaults(handler=_watch)
    _add_run(commands)

    dlq = commands.add_parser("dlq", help="summarise the dead-letter queue by error class")
    _add_error_class(dlq)
    targets.add_target_arguments(dlq)
    dlq.set_defaults(handler=_dlq)

    redrive = commands.add_parser("redrive", help="move DLQ messages back to the work queue")
    _add_error_class(redrive)
    redrive.add_argument("--dry-run", action="store_true", help="say what would move, move nothing")
    targets.add_target_arguments(redrive)
    redrive.set_defaults(handler=_redrive)

    spending = commands.add_parser("spend", help="today's and this month's estimated spend, against the caps")
    targets.add_target_arguments(spending)
    spending.set_defaults(handler=_spend)

    enable = commands.add_parser(
        "enable-eventbridge",
        help="turn on an existing bucket's EventBridge delivery, keeping its other notifications",
    )
    enable.add_argument("bucket")
    enable.add_argument("--dry-run", action="store_true", help="say what would be written, write nothing")
    targets.add_aws_arguments(
        enable.add_argument_group("where the bucket is (standard boto3 configuration otherwise)")
    )
    enable.set_defaults(handler=_enable_eventbridge)

    status = commands.add_parser("status", help="where one image stands, and what to do next")
    status.add_argument("image_key", metavar="KEY", help="the image's key in the input bucket")
    targets.add_target_arguments(status)
    status.set_defaults(handler=_status)
    _add_backfill(commands)
    return parser


def _add_backfill(commands: Any) -> None:
    backfill = commands.add_parser(
        "backfill",
        help="send what is already in the input bucket (or named by a manifest) to be processed",
        description="Pair the images already in the input bucket with their sidecars (or take a "
        "manifest's rows), show the plan and its estimated cost, then send the pairs that are "
        "not yet processed to the work queue. Running it again sends only what is left.",
    )
    source = backfill.add_mutually_exclusive_group()
    source.add_argument("--prefix", default="", help="only the keys under this prefix (default: all)")
    source.add_argument(
        "--manifest",
        metavar="FILE",
        help="a .csv or .jsonl of image keys and their sidecar fields, instead of the bucket's own "
        "sidecars (each is written beside its image as K.json, where no sidecar is)",
    )
    backfill.add_argument("--dry-run", action="store_true", help="show the plan, send and write nothing")
    _add_spending_questions(backfill)
    backfill.add_argument(
        "--resend",
        action="store_true",
        help="send again what an earlier run sent and is not processed yet (lost messages, say)",
    )
    backfill.add_argument(
        "--concurrency", type=_positive, default=16, help="S3 reads at once while planning (default: 16)"
    )
    backfill.add_argument(
        "--ledger",
        metavar="FILE",
        help="the record of what was sent (default: one per stack and bucket under "
        "$XDG_STATE_HOME/backdrop/backfill/)",
    )
    targets.add_aws_arguments(_stack_group(backfill))
    backfill.set_defaults(handler=_backfill)


def _add_run(commands: Any) -> None:
    run = commands.add_parser(
        "run",
        help="process a folder once on a stack: send every new pair, wait, bring the results back",
        description="Send every pair of FOLDER (an image and its .json sidecar) that has no result in "
        "FOLDER/out yet to the stack, wait for every outcome with a progress bar, bring results into "
        "FOLDER/out and failures into FOLDER/out/failed, and sum up. Exit codes: 0 nothing failed, "
        "1 something failed, 3 refused by --max-cost, 4 not confirmed, 5 timed out with pairs "
        "unfinished (they finish on the stack), 130 Ctrl-C.",
    )
    run.add_argument("folder")
    run.add_argument("--out", help="where results go (default: FOLDER/out)")
    _add_spending_questions(run)
    run.add_argument(
        "--timeout",
        type=_amount,
        default=3600.0,
        metavar="SECONDS",
        help="longest wait for the outcomes (default: 3600); what is unfinished then finishes on the stack",
    )
    add_drop_target_arguments(run)
    add_local_start_arguments(run)
    run.set_defaults(handler=_run)


def _add_spending_questions(parser: argparse.ArgumentParser) -> None:
    """What backfill and run ask before spending, and the flags that answer for a script."""
    parser.add_argument("--yes", action="store_true", help="do not ask before sending more than 50 pairs")
    parser.add_argument(
        "--max-cost", type=_amount, metavar="USD", help="refuse (exit 3) when the estimate is above this"
    )


def _stack_group(parser: argparse.ArgumentParser) -> argparse._ArgumentGroup:
    """--stack alone: backfill reads its buckets and queue from the stack, never from a URL given."""
    where = parser.add_argument_group("where the stack is (standard boto3 configuration otherwise)")
    where.add_argument("--stack", default="backdrop", help="a deployed stack's name (default: backdrop)")
    return where


def _amount(text: str) -> float:
    return _at_least(float, text, 0.0, "an amount in US dollars")


def _positive(text: str) -> int:
    return _at_least(int, text, 1, "a whole number")


_Number = TypeVar("_Number", int, float)


def _at_least(kind: Callable[[str], _Number], text: str, least: _Number, what: str) -> _Number:
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
    if not value >= least:  # NaN too
        raise argparse.ArgumentTypeError(f"{text!r}: it must be {least:g} or more")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "key", "unset") is None:
        args.key = ["local-emulator-key"]
    try:
        return args.handler(args)
    except targets.TargetError as error:
        Console(stderr=True).print(f"[red]{error}[/]")
        return 2
    except Exception as error:
        advice = targets.explain(error)
        if advice is None:
            raise
        Console(stderr=True).print(f"[red]{advice}[/]")
        return 2


if __name__ == "__main__":
    sys.exit(main())
