#!/usr/bin/env python3
"""Submit wasmq jobs over plain AMQP 0-9-1 (pika) and wait for one result per job.

An example of a client that needs no `wasmq` binary: it speaks to RabbitMQ the way
`wasmq submit` and `wasmq results` do, but takes the results through a reply queue of
its own instead of a batch queue.

1. Reads jobs (`.json`: one job or an array; `.jsonl`: one per line; a directory of
   them; `-`: stdin), gives an `id` (a UUID) to a job without one, and refuses the run
   when ids repeat. Modules must be `{"base64": ...}` or `{"sha256": ...}`: a worker
   rejects `{"path": ...}`. With `--inline-paths`, a path module (a binary `.wasm` file,
   relative to its job file) is embedded as base64.
2. Validates every job against the job schema (`docs/schema/job.schema.json`) when there
   is one, before connecting: one invalid job and nothing is published.
3. Uses the jobs queue `<prefix>.jobs` the workers declared; when there is none yet,
   declares it as wasmq does (a quorum queue with the workers' `--delivery-limit`,
   dead-lettered to `<prefix>.jobs.dlx`), so the jobs wait for the first worker. Then it
   declares an exclusive, server-named reply queue and consumes it.
4. Publishes each job to `<prefix>.jobs` with publisher confirms, `mandatory`, and the
   properties wasmq's own submit sets: `content_type` application/json, `delivery_mode`
   2 (persistent), `message_id` the job id, `user_id` the connection's user (RabbitMQ
   checks it; the workers take it as the job's tenant), plus `reply_to` the reply queue
   and a `correlation_id` that the worker copies onto the result.
5. Waits for one result per job (a repeated delivery of a job's result is dropped:
   delivery is at least once), validates each against the result schema
   (`docs/schema/result.schema.json`), prints it as one JSON line on stdout as it
   arrives, and a summary on stderr.

Exit status: 0 when every job has a result and all succeeded; 1 when a job did not
succeed or has no result by `--timeout`; 2 for usage errors, unreadable or invalid jobs,
a result that violates the result schema, and broker errors; 130 when interrupted.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import logging
import os
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import pika
import pika.credentials
import pika.exceptions
from pika.adapters.blocking_connection import BlockingChannel
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

DEFAULT_URL = "amqp://guest:guest@127.0.0.1:5672/%2f"
DEFAULT_SCHEMA_DIR = Path(__file__).resolve().parents[2] / "docs" / "schema"
# The order `wasmq` itself lists statuses in (`Status::ALL`).
STATUSES = (
    "succeeded",
    "failed",
    "trapped",
    "timed_out",
    "fuel_exhausted",
    "memory_exceeded",
    "disk_exceeded",
    "rejected",
    "internal_error",
)


class UsageError(Exception):
    """Something the user has to fix before anything is published (exit status 2)."""

    def __init__(self, problems: str | list[str]) -> None:
        self.problems = [problems] if isinstance(problems, str) else problems
        super().__init__("; ".join(self.problems))


@dataclass
class Job:
    """One job as it will be published."""

    origin: str  # where it came from: `file.jsonl:3`, `file.json[2]`, `-:1`
    base: Path  # the directory `path` modules are relative to
    body: dict[str, Any]

    @property
    def id(self) -> str:
        return str(self.body["id"])


# ---------------------------------------------------------------------------- jobs


def read_jobs(inputs: Iterable[str]) -> list[Job]:
    """Every job of every input, in order, as `wasmq submit` reads them."""
    jobs: list[Job] = []
    problems: list[str] = []
    for name in inputs:
        if name == "-":
            parse_jobs(sys.stdin.read(), "-", Path.cwd(), None, jobs, problems)
            continue
        path = Path(name)
        files = (
            sorted(p for p in path.iterdir() if p.suffix in (".json", ".jsonl"))
            if path.is_dir()
            else [path]
        )
        for f in files:
            try:
                text = f.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as e:
                raise UsageError(f"failed to read job file {f}: {e}") from e
            kind = {".json": "document", ".jsonl": "lines", ".ndjson": "lines"}.get(f.suffix)
            parse_jobs(text, str(f), f.parent, kind, jobs, problems)
    if problems:
        raise UsageError(problems)
    return jobs


def parse_jobs(
    text: str, name: str, base: Path, kind: str | None, jobs: list[Job], problems: list[str]
) -> None:
    """One JSON document (a job or an array of jobs), or one job per line; `kind`
    None guesses: a document when the whole text parses as one."""

    def add(origin: str, value: Any) -> None:
        if isinstance(value, dict):
            jobs.append(Job(origin, base, value))
        else:
            problems.append(f"{origin}: a job must be a JSON object")

    if kind != "lines":
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as e:
            if kind == "document":
                problems.append(f"{name}: not JSON: {e}")
                return
        else:
            if isinstance(doc, list):
                for i, item in enumerate(doc):
                    add(f"{name}[{i}]", item)
            else:
                add(name, doc)
            return
    for n, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            try:
                add(f"{name}:{n}", json.loads(line))
            except json.JSONDecodeError as e:
                problems.append(f"{name}:{n}: not JSON: {e}")


def prepare(jobs: list[Job], batch: str | None, inline_paths: bool) -> None:
    """Makes every job publishable: an id for each (unique), the batch when one is given,
    and path modules embedded (with `inline_paths`) or refused."""
    problems: list[str] = []
    first_seen: dict[str, str] = {}
    inlined: dict[Path, str] = {}
    for job in jobs:
        body = job.body
        if batch is not None:
            body["batch"] = batch
        if "id" not in body:
            body["id"] = str(uuid.uuid4())
        if not isinstance(body["id"], str):
            problems.append(f"{job.origin}: id must be a string, not {body['id']!r}")
            continue
        if body["id"] in first_seen:
            problems.append(
                f"{job.origin}: id {body['id']!r} is already used by {first_seen[body['id']]}; "
                "ids must be unique, results are matched to jobs by id"
            )
        first_seen.setdefault(body["id"], job.origin)
        module = body.get("module")
        if not (isinstance(module, dict) and "path" in module):
            continue
        if not inline_paths:
            problems.append(
                f"{job.origin}: module.path {module['path']!r}: a worker fed from a queue "
                "refuses path modules; embed them with --inline-paths, or submit with "
                "`wasmq submit`, which uploads them to the workers' module store"
            )
            continue
        path = job.base / str(module["path"])
        if path.suffix == ".wat":
            problems.append(
                f"{job.origin}: module.path {path}: WAT text must be assembled first "
                "(e.g. wasm-tools parse), or submitted with `wasmq submit --inline`"
            )
            continue
        if path not in inlined:
            try:
                inlined[path] = base64.b64encode(path.read_bytes()).decode("ascii")
            except OSError as e:
                problems.append(f"{job.origin}: module.path {path}: {e}")
                continue
        body["module"] = {"base64": inlined[path]}
    if problems:
        raise UsageError(problems)


# -------------------------------------------------------------------------- schemas


@dataclass
class Schemas:
    """The validators of job and result messages (`job` None: jobs are not checked)."""

    result: Any
    job: Any | None


def load_schemas(schema_dir: Path, result_path: Path | None, job_path: Path | None) -> Schemas:
    """Loads the result schema (required) and the job schema (when given, or when the
    schema directory has one); both may `$ref` the other by its `$id`."""
    result_path = result_path or schema_dir / "result.schema.json"
    if not result_path.is_file():
        raise UsageError(
            f"no result schema at {result_path}: pass --schema-dir DIR (the repository's "
            "docs/schema) or --result-schema FILE"
        )
    if job_path is None and (schema_dir / "job.schema.json").is_file():
        job_path = schema_dir / "job.schema.json"
    loaded: dict[str, dict[str, Any]] = {}
    for what, path in (("result", result_path), ("job", job_path)):
        if path is None:
            continue
        try:
            schema = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise UsageError(f"could not read the {what} schema {path}: {e}") from e
        if not isinstance(schema, dict):
            raise UsageError(f"the {what} schema {path} is not a JSON object")
        loaded[what] = schema
    registry: Registry = Registry().with_resources(
        (s["$id"], Resource.from_contents(s, default_specification=DRAFT202012))
        for s in loaded.values()
        if isinstance(s.get("$id"), str)
    )

    def validator(what: str) -> Any:
        schema = loaded[what]
        cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
        try:
            cls.check_schema(schema)
        except jsonschema.SchemaError as e:
            raise UsageError(f"the {what} schema is not a valid JSON Schema: {e.message}") from e
        return cls(schema, registry=registry)

    return Schemas(result=validator("result"), job=validator("job") if "job" in loaded else None)


def violations(validator: Any, instance: Any) -> list[str]:
    """What is wrong with `instance`, one line per error, each naming where."""
    errors = sorted(validator.iter_errors(instance), key=lambda e: e.json_path)
    return [f"{e.json_path}: {shorten(e.message)}" for e in errors]


def shorten(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


# ------------------------------------------------------------------------- the broker


@dataclass
class Topology:
    """The jobs side of the names wasmq declares under a prefix (crates/broker/src/amqp.rs,
    deploy/rabbitmq/README.md)."""

    prefix: str
    delivery_limit: int

    @property
    def jobs_queue(self) -> str:
        return f"{self.prefix}.jobs"

    def ensure_jobs_queue(self, conn: pika.BlockingConnection, declare: bool) -> None:
        """Uses the jobs queue the workers declared, whatever its arguments. When there is
        none yet (and `declare`), declares it as `Topology::declare` does, with its
        dead-letter exchange and queue, so the jobs wait for the first worker; the results
        side (exchange, queue, retention) is left to the workers, which declare it at
        start with settings this client does not need to know."""
        probe = conn.channel()  # a failed passive declare closes its channel
        try:
            probe.queue_declare(self.jobs_queue, passive=True)
            probe.close()
            return
        except pika.exceptions.ChannelClosedByBroker as e:
            if e.reply_code != 404:
                raise BrokerError(f"the jobs queue {self.jobs_queue} cannot be used: {e}") from e
            if not declare:
                raise BrokerError(
                    f"the jobs queue {self.jobs_queue} does not exist: no worker has declared "
                    "it yet; start one on this prefix, or leave out --no-declare"
                ) from e
        ch = conn.channel()
        p, quorum = self.prefix, {"x-queue-type": "quorum"}
        ch.exchange_declare(f"{p}.jobs.dlx", "fanout", durable=True)
        ch.queue_declare(f"{p}.jobs.dead", durable=True, arguments=quorum)
        ch.queue_bind(f"{p}.jobs.dead", f"{p}.jobs.dlx", routing_key="")
        jobs_args = {
            **quorum,
            "x-delivery-limit": self.delivery_limit,
            "x-dead-letter-exchange": f"{p}.jobs.dlx",
        }
        try:
            ch.queue_declare(self.jobs_queue, durable=True, arguments=jobs_args)
        except pika.exceptions.ChannelClosedByBroker as e:
            # A worker declared it meanwhile, with another delivery limit.
            raise BrokerError(
                f"declaring the jobs queue {self.jobs_queue} (if it exists with another "
                f"delivery limit, use the workers' --delivery-limit): {e}"
            ) from e
        ch.close()


class BrokerError(Exception):
    """The broker refused something or went away (exit status 2)."""


def url_user(params: pika.URLParameters) -> str | None:
    """The user the connection authenticates as (pika percent-decodes it): the only
    `user_id` RabbitMQ accepts on its messages. None with EXTERNAL authentication."""
    creds = params.credentials
    return creds.username if isinstance(creds, pika.credentials.PlainCredentials) else None


def redact(url: str) -> str:
    """The URL without its password, for messages."""
    scheme, sep, rest = url.partition("://")
    creds, at, host = rest.rpartition("@")
    if not (sep and at):
        return url
    return f"{scheme}://{creds.split(':', 1)[0]}:***@{host}"


@dataclass
class Collector:
    """Takes results off the reply queue: one per job, validated, printed."""

    by_correlation: dict[str, str]  # correlation_id -> job id, for every job
    schemas: Schemas
    waiting: set[str] = field(default_factory=set)  # jobs published, without a result yet
    answered: set[str] = field(default_factory=set)  # jobs with a result (valid or not)
    counts: Counter[str] = field(default_factory=Counter)  # valid results by status
    duplicates: int = 0
    invalid: int = 0

    def __post_init__(self) -> None:
        self.ids = set(self.by_correlation.values())

    def on_message(self, ch: BlockingChannel, method: Any, props: Any, body: bytes) -> None:
        self.take(props.correlation_id, body)
        ch.basic_ack(method.delivery_tag)

    def take(self, correlation_id: str | None, body: bytes) -> None:
        try:
            result = json.loads(body)
        except ValueError as e:
            result, problems = None, [f"not JSON: {e}"]
        else:
            problems = violations(self.schemas.result, result)
            if not isinstance(result, dict) or not all(
                isinstance(result.get(k), str) for k in ("id", "status", "code")
            ):
                problems.append("not an object with a string id, status and code")
        # The correlation id names the job even when the result cannot (a worker echoes
        # only a valid id); a result without one is matched by its own id.
        job_id = self.by_correlation.get(correlation_id or "")
        if job_id is None and not problems and result["id"] in self.ids:
            job_id = result["id"]
        if job_id is None:
            text = shorten(body.decode("utf-8", "replace"))
            print(
                f"warning: ignoring a message that answers none of these jobs: {text}",
                file=sys.stderr,
            )
            return
        if job_id in self.answered:
            self.duplicates += 1  # at-least-once delivery: a job ran (or was published) twice
            return
        self.answered.add(job_id)
        self.waiting.discard(job_id)
        if problems:
            self.invalid += 1
            print(
                f"error: the result of job {job_id!r} violates the result schema:", file=sys.stderr
            )
            for p in problems[:10]:
                print(f"  {p}", file=sys.stderr)
            return
        self.counts[result["status"]] += 1
        line = json.dumps(result, ensure_ascii=False, separators=(",", ":"))
        sys.stdout.buffer.write(line.encode("utf-8") + b"\n")
        sys.stdout.flush()

    def summary(self, elapsed: float) -> str:
        """`3 jobs in 0.41 s (7 jobs/s): 2 succeeded, 1 trapped`, as wasmq prints it."""
        total = sum(self.counts.values()) + self.invalid
        order = {s: i for i, s in enumerate(STATUSES)}
        parts = [
            f"{self.counts[s]} {s}" for s in sorted(self.counts, key=lambda s: order.get(s, 99))
        ]
        if self.invalid:
            parts.append(f"{self.invalid} violated the result schema")
        line = (
            f"{total} job{'' if total == 1 else 's'} in {elapsed:.2f} s "
            f"({total / elapsed if elapsed > 0 else 0:.0f} jobs/s): "
            f"{', '.join(parts) or 'nothing to do'}"
        )
        if self.duplicates:
            line += f" ({self.duplicates} duplicate(s) dropped)"
        return line


def submit(args: argparse.Namespace, jobs: list[Job], schemas: Schemas) -> int:
    """Publishes the jobs, collects their results; returns the exit status."""
    params = pika.URLParameters(args.amqp_url)
    params.client_properties = {"connection_name": "wasmq_submit.py"}
    try:
        conn = pika.BlockingConnection(params)
    except pika.exceptions.AMQPError as e:
        raise BrokerError(
            f"could not connect to the broker at {redact(args.amqp_url)}: {e!r}"
        ) from e
    run = uuid.uuid4().hex
    collector = Collector({f"{run}.{i}": j.id for i, j in enumerate(jobs)}, schemas)
    topology = Topology(args.prefix, args.delivery_limit)
    started = time.monotonic()
    error: str | None = None
    interrupted = False
    published = 0
    try:
        topology.ensure_jobs_queue(conn, args.declare)
        ch = conn.channel()
        # Results come back here; the broker deletes the queue with this connection.
        reply = ch.queue_declare("", exclusive=True, auto_delete=True).method.queue
        ch.basic_qos(prefetch_count=256)
        ch.basic_consume(reply, collector.on_message)
        ch.confirm_delivery()
        user = url_user(params)
        for i, job in enumerate(jobs):
            collector.waiting.add(job.id)
            props = pika.BasicProperties(
                content_type="application/json",
                delivery_mode=pika.DeliveryMode.Persistent.value,
                message_id=job.id,
                user_id=user,
                reply_to=reply,
                correlation_id=f"{run}.{i}",
            )
            body = json.dumps(job.body, ensure_ascii=False, separators=(",", ":")).encode()
            try:
                # Returns once the broker confirmed the message; a nack, or a return of
                # this mandatory message (nothing routed it), raises.
                ch.basic_publish("", topology.jobs_queue, body, props, mandatory=True)
            except (pika.exceptions.UnroutableError, pika.exceptions.NackError) as e:
                collector.waiting.discard(job.id)
                raise BrokerError(f"the broker refused job {job.id!r} ({job.origin}): {e}") from e
            published += 1
        print(
            f"submitted {len(jobs)} job(s) to {topology.jobs_queue}; waiting for results",
            file=sys.stderr,
        )
        deadline = None if args.timeout is None else started + args.timeout
        while collector.waiting:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                break
            conn.process_data_events(time_limit=1.0 if left is None else min(1.0, left))
    except KeyboardInterrupt:
        interrupted = True
    except BrokerError as e:
        error = str(e)
    except pika.exceptions.AMQPError as e:
        error = f"broker error: {e!r}"
    finally:
        if conn.is_open:
            with contextlib.suppress(pika.exceptions.AMQPError):
                conn.close()
    if error:
        print(f"error: {error}", file=sys.stderr)
    print(collector.summary(time.monotonic() - started), file=sys.stderr)
    if published < len(jobs):
        print(f"{published} of {len(jobs)} jobs were published", file=sys.stderr)
    if collector.waiting:
        if interrupted:
            why = "interrupted"
        elif error:
            why = "stopped"
        else:
            why = f"timed out after {args.timeout:g} s"
        missing = ", ".join(repr(i) for i in sorted(collector.waiting)[:5])
        print(
            f"{why}: {len(collector.waiting)} job(s) have no result, e.g. {missing}; a result "
            f"that comes later goes to the queue {args.prefix}.results (wasmq results reads it)",
            file=sys.stderr,
        )
    if error or collector.invalid:
        return 2
    if interrupted:
        return 130
    complete = published == len(jobs) and not collector.waiting
    return 0 if complete and set(collector.counts) <= {"succeeded"} else 1


# ------------------------------------------------------------------------------ main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    env = os.environ.get
    p = argparse.ArgumentParser(
        description="Submit wasmq jobs over AMQP and print one result per job as JSONL.",
        epilog="Exit status: 0 all succeeded, 1 a job did not succeed or has no result, "
        "2 usage, job, schema or broker errors.",
    )
    p.add_argument(
        "jobs",
        nargs="+",
        metavar="JOB_FILE",
        help="job files (.json: a job or an array; .jsonl: one per line), "
        "directories of them, or - for stdin",
    )
    p.add_argument(
        "--amqp-url",
        default=env("WASMQ_AMQP_URL", DEFAULT_URL),
        help="the broker [env WASMQ_AMQP_URL; default %(default)s]",
    )
    p.add_argument(
        "--prefix",
        default=env("WASMQ_QUEUE_PREFIX", "wasmq"),
        help="queue prefix of the workers [env WASMQ_QUEUE_PREFIX; default %(default)s]",
    )
    p.add_argument(
        "--delivery-limit",
        type=int,
        default=env("WASMQ_DELIVERY_LIMIT", "5"),  # argparse applies `type` to it
        help="the workers' delivery limit, an argument of the jobs queue, used when this "
        "client has to declare it [env WASMQ_DELIVERY_LIMIT; default %(default)s]",
    )
    p.add_argument(
        "--no-declare",
        dest="declare",
        action="store_false",
        help="never declare the jobs queue: fail when no worker has declared it yet "
        "(for users without configure permission on it)",
    )
    p.add_argument("--batch", help="set every job's batch to this")
    p.add_argument(
        "--timeout",
        type=float,
        default=None,
        metavar="SECONDS",
        help="give up waiting for results after this long [default: no limit]",
    )
    p.add_argument(
        "--schema-dir",
        type=Path,
        default=DEFAULT_SCHEMA_DIR,
        help="where result.schema.json (and job.schema.json) are "
        "[default: this repository's docs/schema]",
    )
    p.add_argument(
        "--result-schema", type=Path, help="the result schema [default: in --schema-dir]"
    )
    p.add_argument(
        "--job-schema",
        type=Path,
        help="the job schema [default: in --schema-dir, when there is one]",
    )
    p.add_argument(
        "--inline-paths",
        action="store_true",
        help='embed {"path": ...} modules (binary .wasm, relative to the job '
        "file) as base64; without it, path modules are refused",
    )
    args = p.parse_args(argv)
    if args.timeout is not None and args.timeout < 0:
        p.error("--timeout must not be negative")
    if not 0 <= args.delivery_limit < 2**31:
        p.error("--delivery-limit must be a non-negative 32-bit integer")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.getLogger("pika").setLevel(logging.CRITICAL)  # our own messages say what failed
    try:
        schemas = load_schemas(args.schema_dir, args.result_schema, args.job_schema)
        jobs = read_jobs(args.jobs)
        prepare(jobs, args.batch, args.inline_paths)
        if schemas.job is not None:
            problems = [
                f"{job.origin}: violates the job schema: {v}"
                for job in jobs
                for v in violations(schemas.job, job.body)
            ]
            if problems:
                raise UsageError(problems)
        if not jobs:
            print("no jobs to submit", file=sys.stderr)
            return 0
        return submit(args, jobs, schemas)
    except UsageError as e:
        for p in e.problems:
            print(f"error: {p}", file=sys.stderr)
        print("nothing was published", file=sys.stderr)
        return 2
    except BrokerError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
