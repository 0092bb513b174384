"""API load benchmark: catalog search and job reads under concurrent keep-alive load, next to a
bare FastAPI endpoint served by the same server in the same run.

Setup: a fresh coordinator home (SQLite in the home) served by one uvicorn process (one
worker, the loop and HTTP implementations uvicorn picks by default: uvloop and httptools
when installed, else asyncio and h11; ``--loop``/``--http`` choose). Through that server's
API: a creator account with a handful of real data-host nodes (linked identities,
registered dev-attested hosts, ingested CSVs) and, to reach ``--listings``, synthetic
manifests signed with those nodes' creator keys (a real predicate with another dataset id,
title, modality, price, size), each verified and logged by the server; two buyers with
``--jobs`` jobs each (half of them funded).

Targets: the same catalog search again and again (after the first, answered from the
coordinator's read cache until a write or its 2 s expiry), the same search with a new
``max_price`` each time (never cached: the cost of a real search), one job by id, and a
page of jobs, each with a buyer's API key.

Baseline: ``GET /bare``, an ``async def`` route returning a small dict, added to the same
app (so the same middleware and server); ``GET /bare-sync`` is the same as a plain ``def``
route (FastAPI runs it in its thread pool, as it does every route of ours).

Load: a second process opens ``--concurrency`` keep-alive connections and, for each target
in turn, sends requests back to back on each for ``--warmup`` + ``--duration`` seconds;
only the last ``--duration`` seconds count. The client is asyncio over raw sockets (a fixed
request, a ``Content-Length`` body) so that it costs the shared CPUs as little as possible;
it still shares the machine's cores with the server, which the output reports (CPU each
side used). Any non-200 answer or broken connection is an error; the script then exits 1.

This script only measures: it never changes the coordinator's code or settings and writes
only inside its temporary directory.

Run: python -m benchmarks.bench_api_load [--quick] [--listings 1000] [--jobs 50]
     [--concurrency 16] [--duration 10] [--warmup 2] [--loop auto] [--http auto] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import multiprocessing
import os
import random
import secrets
import socket
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable, MutableMapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import anyio.to_thread
import httpx
import uvicorn
from fastapi import FastAPI
from sqlmodel import Session

from benchmarks.timing import cpu_model
from coordinator.accounts import authenticate
from coordinator.api.app import create_app
from coordinator.api.schemas import ListingPage
from coordinator.catalog import CatalogFilter, listing_view, search_catalog
from coordinator.home import init_coordinator_home, open_coordinator_home
from coordinator.identity import sign_identity_link
from coordinator.jobs import job_datasets, job_events, job_view, list_jobs, visible_job
from coordinator.service import bootstrap_admin, open_coordinator, prepare_database
from data_host.attestation import EvidenceKind, produce_evidence, store_evidence
from data_host.home import NodeHome, init_home
from data_host.ingest import ingest_dataset
from data_host.terms import DatasetTerms
from provenance.dsse import Envelope
from provenance.keys import SigningKey
from provenance.manifest import build_statement, sign_manifest

HOST = "127.0.0.1"
#: The catalog search under load: cheap tabular data, one page of 20.
CATALOG_QUERY = "/v1/catalog?modality=tabular&max_price=0.005&limit=20"
JOBS_QUERY = "/v1/jobs?limit=20"
#: Distinct searches for the uncached target: CATALOG_QUERY's max_price with more digits
#: (0.005000001, …), so that no answer is served from the coordinator's read cache.
COLD_QUERIES = 200_000
COLD_CATALOG_QUERY = "/v1/catalog?modality=tabular&limit=20&max_price=0.005"
_PRICES = ("0.0002", "0.0005", "0.001", "0.002", "0.003", "0.004", "0.005", "0.0075", "0.01")
_TOPICS = ("sensor", "retail", "clinical", "traffic", "energy", "weather", "finance", "soil")
_KINDS = ("readings", "transactions", "measurements", "logs", "survey", "telemetry")
_MAX_HEAD = 16 * 1024
#: The SQL ``search_catalog`` runs for ``CATALOG_QUERY``, for the raw-driver floor.
_RAW_COUNT = (
    "SELECT count(*) FROM listing WHERE status = 'listed' AND modality = ? AND price_value <= ?"
)
_RAW_PAGE = (
    "SELECT * FROM listing WHERE status = 'listed' AND modality = ? AND price_value <= ? "
    "ORDER BY price_value, dataset_id, version LIMIT 20"
)


@dataclass
class Party:
    """An account and its API key."""

    account_id: str
    api_key: str

    @property
    def headers(self) -> dict[str, str]:
        """Its Authorization header."""
        return {"Authorization": f"Bearer {self.api_key}"}


@dataclass
class Setup:
    """What the load needs from the populated coordinator."""

    buyer: Party
    job_ids: list[str]
    listings: int
    catalog_matches: int
    jobs_total: int
    seconds: float


@dataclass
class ServerInfo:
    """The server process as it reported itself."""

    port: int
    pid: int
    loop: str
    http: str


@dataclass
class Target:
    """One thing to load: a name and the request paths its connections cycle through."""

    name: str
    paths: list[str]
    authorization: str | None


@dataclass
class LoadResult:
    """What the load generator measured for one target."""

    target: str
    requests: int
    errors: int
    duration_s: float
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    server_cpu_ms_per_request: float | None
    server_cpus: float | None
    client_cpus: float
    other_cpus: float | None
    first_error: str | None = None
    ratio_to_bare: float | None = field(default=None)


# --- the server process -----------------------------------------------------------------


def add_baseline_routes(app: FastAPI) -> None:
    """``GET /bare`` (async) and ``GET /bare-sync`` (thread pool): small JSON, no auth."""

    @app.get("/bare", include_in_schema=False)
    async def bare() -> dict[str, Any]:
        return {"status": "ok", "service": "bare", "n": 1}

    @app.get("/bare-sync", include_in_schema=False)
    def bare_sync() -> dict[str, Any]:
        return {"status": "ok", "service": "bare", "n": 1}


def serve(home_root: str, loop: str, http: str, report: Connection) -> None:
    """Serve the coordinator at ``home_root`` with the baseline routes on a free port."""
    coordinator = open_coordinator(open_coordinator_home(Path(home_root)))
    try:
        app = create_app(coordinator)
        add_baseline_routes(app)
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((HOST, 0))
        config = uvicorn.Config(
            app,
            host=HOST,
            port=listener.getsockname()[1],
            loop=loop,
            http=http,
            workers=1,
            log_level="warning",
            access_log=False,
        )
        config.load()
        factory = config.get_loop_factory()
        loop_name = "asyncio" if factory is None else factory.__module__.split(".")[0]
        report.send(
            asdict(
                ServerInfo(
                    listener.getsockname()[1],
                    os.getpid(),
                    loop_name,
                    config.http_protocol_class.__name__,
                )
            )
        )
        report.close()
        uvicorn.Server(config).run(sockets=[listener])
    finally:
        coordinator.close()


def start_server(home_root: Path, loop: str, http: str) -> tuple[Any, ServerInfo]:
    """Start ``serve`` in a fresh process; return it and its report once it answers."""
    context = multiprocessing.get_context("spawn")
    receiving, sending = context.Pipe(duplex=False)
    process = context.Process(target=serve, args=(str(home_root), loop, http, sending))
    process.start()
    sending.close()
    if not receiving.poll(60):
        process.terminate()
        raise RuntimeError("the server process did not start within 60 s")
    info = ServerInfo(**receiving.recv())
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"http://{HOST}:{info.port}/healthz", timeout=2).status_code == 200:
                return process, info
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline or not process.is_alive():
            process.terminate()
            raise RuntimeError("the server did not answer /healthz within 30 s")
        time.sleep(0.05)


# --- populating the coordinator ----------------------------------------------------------


@dataclass
class Node:
    """A data-host node with one real ingested dataset."""

    home: NodeHome
    envelope: dict[str, Any]
    evidence: dict[str, Any]


def make_node(root: Path, name: str, rows: int) -> Node:
    """A node with dev evidence and an ingested numeric CSV of ``rows`` rows."""
    home = init_home(root / name, name)
    evidence = produce_evidence(home, EvidenceKind.DEV)
    store_evidence(home, evidence)
    data = root / f"{name}.csv"
    with data.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["x1", "x2", "x3", "label"])
        for i in range(rows):
            writer.writerow([f"{i * 0.1:.1f}", i % 7, (i * 31) % 101, i % 2])
    result = ingest_dataset(
        home,
        data,
        DatasetTerms(
            title=f"{name} sensor readings",
            license="CC-BY-4.0",
            price_per_sample=Decimal("0.001"),
            currency="USD",
            lifetime_epsilon=10.0,
            max_epsilon_per_job=3.0,
            allowed_uses=("train",),
        ),
    )
    return Node(home, result.dataset.signed.envelope.to_dict(), json.loads(evidence.to_json()))


def synthetic_manifest(template: dict[str, Any], key: SigningKey, rng: random.Random) -> Envelope:
    """A manifest shaped like ``template``'s predicate for another dataset, signed by ``key``."""
    predicate = json.loads(json.dumps(template))
    dataset_id = "ds_" + secrets.token_hex(13)
    root = secrets.token_hex(32)
    rows = rng.randrange(500, 2_000_000)
    row_bytes = rng.randrange(20, 400)
    total = rows * row_bytes
    chunk_size = predicate["content"]["chunking"]["chunk_size"]
    chunks = max(1, -(-total // chunk_size))
    modality = rng.choices(("tabular", "text", "image"), weights=(6, 2, 2))[0]
    topic, kind = rng.choice(_TOPICS), rng.choice(_KINDS)
    predicate["dataset"].update(
        {"id": dataset_id, "version": 1, "title": f"{topic} {kind} {dataset_id[3:9]}"}
    )
    predicate["price"] = {
        "per_sample": rng.choice(_PRICES),
        "currency": "USD" if rng.random() < 0.9 else "EUR",
    }
    predicate["license"] = rng.choice(("CC-BY-4.0", "CC-BY-NC-4.0", "MIT", "CC0-1.0"))
    predicate["allowed_uses"] = rng.choice((["train"], ["evaluate", "train"]))
    predicate["privacy"]["lifetime_epsilon"] = rng.choice(("5.0", "10.0", "20.0"))
    schema = predicate["schema"]
    schema["rows"] = rows
    if modality == "text":
        schema["features"] = [
            {"dtype": "string", "name": "text", "shape": []},
            {"dtype": "int64", "name": "label", "shape": []},
        ]
    elif modality == "image":
        schema["format"] = "image-folder"
        schema["features"] = [
            {"dtype": "uint8", "name": "image", "shape": [32, 32, 3]},
            {"dtype": "int64", "name": "label", "shape": []},
        ]
    chunking = predicate["content"]["chunking"]
    chunking.update({"root": root, "chunk_count": chunks, "total_bytes": total})
    chunking["files"] = [
        {"chunk_count": chunks, "first_chunk": 0, "path": "data.csv", "size": total}
    ]
    statement = build_statement(
        dataset_id=dataset_id, version=1, merkle_root=root, predicate=predicate
    )
    return sign_manifest(statement, key).envelope


def _created(response: httpx.Response, *codes: int) -> dict[str, Any]:
    if response.status_code not in (codes or (201,)):
        raise RuntimeError(
            f"{response.request.method} {response.request.url.path}: "
            f"{response.status_code} {response.text[:300]}"
        )
    body: dict[str, Any] = response.json()
    return body


def populate(
    client: httpx.Client, admin_key: str, root: Path, *, listings: int, jobs: int, nodes: int
) -> Setup:
    """Accounts, nodes, ``listings`` verified listings and two buyers' jobs, via the API."""
    start = time.perf_counter()
    rng = random.Random(20261125)
    admin = {"Authorization": f"Bearer {admin_key}"}

    def party(name: str, role: str) -> Party:
        body = _created(
            client.post("/v1/accounts", json={"name": name, "role": role}, headers=admin)
        )
        return Party(body["account"]["id"], body["api_key"])

    creator = party("alice", "creator")
    buyers = [party("bob", "buyer"), party("dave", "buyer")]
    audience = client.get("/v1/info").json()["audience"]
    made = [make_node(root, f"node{n}", rows=2_000 + 500 * n) for n in range(nodes)]
    for node in made:
        proof = sign_identity_link(
            node.home.creator_key(), account_id=creator.account_id, audience=audience
        )
        _created(
            client.post("/v1/identities", json={"proof": proof.to_dict()}, headers=creator.headers),
            200,
            201,
        )
        _created(
            client.post(
                "/v1/hosts",
                json={"host_did": node.home.config.creator_did, "evidence": node.evidence},
                headers=creator.headers,
            )
        )
        _created(
            client.post("/v1/catalog", json={"envelope": node.envelope}, headers=creator.headers)
        )
    template = json.loads(Envelope.from_dict(made[0].envelope).payload)["predicate"]
    keys = [node.home.creator_key() for node in made]
    for number in range(listings - nodes):
        key = keys[number % len(keys)]
        predicate = {**template, "creator": key.public_key.did}
        envelope = synthetic_manifest(predicate, key, rng)
        _created(
            client.post(
                "/v1/catalog", json={"envelope": envelope.to_dict()}, headers=creator.headers
            )
        )

    # Jobs on cheap, trainable USD tabular datasets, 1-3 each.
    trainable = client.get(
        "/v1/catalog?modality=tabular&currency=USD&use=train&max_price=0.002&limit=200",
        headers=buyers[0].headers,
    ).json()["items"]
    job_ids: list[str] = []
    for buyer in buyers:
        for number in range(jobs):
            chosen = rng.sample(trainable, rng.randint(1, 3))
            spec = {
                "datasets": [
                    {"dataset_id": item["dataset_id"], "target_epsilon": "0.5"} for item in chosen
                ],
                "model": "mlp",
                "rounds": rng.randint(1, 5),
            }
            quote = _created(client.post("/v1/quotes", json=spec, headers=buyer.headers), 200)
            total = Decimal(quote["quote"]["total_minor"]) / 100
            job = _created(
                client.post(
                    "/v1/jobs",
                    json={**spec, "budget": {"amount": f"{total:.2f}", "currency": "USD"}},
                    headers=buyer.headers,
                )
            )
            if number % 2 == 0:
                _created(client.post(f"/v1/jobs/{job['id']}/fund", headers=buyer.headers), 200)
            if buyer is buyers[0]:
                job_ids.append(job["id"])
    page = client.get(CATALOG_QUERY, headers=buyers[0].headers).json()
    return Setup(
        buyers[0],
        job_ids,
        listings,
        page["total"],
        jobs,
        time.perf_counter() - start,
    )


# --- the load generator process ------------------------------------------------------------


def _cpu_seconds_of(pid: int) -> float | None:
    """User + system CPU seconds of process ``pid`` (Linux), or ``None``."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _busy_cpu_seconds() -> float | None:
    """CPU seconds all CPUs spent outside idle and I/O wait since boot (Linux), or ``None``."""
    try:
        fields = [
            int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
        ]
    except (OSError, ValueError):
        return None
    return (sum(fields[:8]) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def _head_of(head: bytes) -> tuple[int, int]:
    """Status code and Content-Length of a response head."""
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return status, int(value.strip())
    raise ValueError(f"response without Content-Length: {lines[0]!r}")


async def _load(
    port: int, target: Target, concurrency: int, warmup: float, duration: float, server_pid: int
) -> LoadResult:
    requests = [
        (
            f"GET {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\nAccept: application/json\r\n"
            + (f"Authorization: {target.authorization}\r\n" if target.authorization else "")
            + "\r\n"
        ).encode()
        for path in target.paths
    ]
    start = time.perf_counter()
    measure_from = start + warmup
    stop = measure_from + duration
    latencies: list[float] = []
    errors = 0
    first_error: str | None = None
    marks: dict[str, Any] = {}

    async def connection(number: int) -> None:
        nonlocal errors, first_error
        sequence = number
        while time.perf_counter() < stop:
            try:
                reader, writer = await asyncio.open_connection(HOST, port, limit=_MAX_HEAD)
            except OSError as exc:
                errors += 1
                first_error = first_error or f"connect: {exc}"
                await asyncio.sleep(0.01)
                continue
            try:
                while True:
                    sent = time.perf_counter()
                    if sent >= stop:
                        break
                    writer.write(requests[sequence % len(requests)])
                    # Connection i sends paths i, i + c, i + 2c, …: each path once per round.
                    sequence += concurrency
                    status, length = _head_of(await reader.readuntil(b"\r\n\r\n"))
                    body = await reader.readexactly(length)
                    done = time.perf_counter()
                    if sent < measure_from or done > stop:
                        continue
                    if status != 200:
                        errors += 1
                        first_error = first_error or f"{status}: {body[:200]!r}"
                    else:
                        latencies.append(done - sent)
            except (OSError, ValueError, asyncio.IncompleteReadError) as exc:
                errors += 1
                first_error = first_error or f"{type(exc).__name__}: {exc}"
            finally:
                writer.close()

    async def mark() -> None:
        await asyncio.sleep(max(0.0, measure_from - time.perf_counter()))
        marks["server"] = _cpu_seconds_of(server_pid)
        marks["client"] = time.process_time()
        marks["busy"] = _busy_cpu_seconds()
        await asyncio.sleep(max(0.0, stop - time.perf_counter()))
        marks["server_end"] = _cpu_seconds_of(server_pid)
        marks["client_end"] = time.process_time()
        marks["busy_end"] = _busy_cpu_seconds()

    await asyncio.gather(mark(), *(connection(n) for n in range(concurrency)))
    latencies.sort()
    count = len(latencies)

    def quantile(q: float) -> float:
        return round(latencies[min(count - 1, int(q * count))] * 1000, 2) if count else 0.0

    server_cpu = (
        None
        if marks["server"] is None or marks["server_end"] is None
        else marks["server_end"] - marks["server"]
    )
    client_cpu = marks["client_end"] - marks["client"]
    other_cpu = (
        None
        if server_cpu is None or marks["busy"] is None or marks["busy_end"] is None
        else max(0.0, marks["busy_end"] - marks["busy"] - server_cpu - client_cpu)
    )
    return LoadResult(
        target=target.name,
        requests=count,
        errors=errors,
        duration_s=duration,
        requests_per_s=round(count / duration, 1),
        p50_ms=quantile(0.50),
        p99_ms=quantile(0.99),
        max_ms=quantile(1.0),
        server_cpu_ms_per_request=(
            None if server_cpu is None or not count else round(server_cpu / count * 1000, 3)
        ),
        server_cpus=None if server_cpu is None else round(server_cpu / duration, 2),
        client_cpus=round(client_cpu / duration, 2),
        other_cpus=None if other_cpu is None else round(other_cpu / duration, 2),
        first_error=first_error,
    )


def run_load(
    port: int, target: Target, concurrency: int, warmup: float, duration: float, server_pid: int
) -> LoadResult:
    """Load ``target`` from this (separate) process; uvloop when installed."""
    try:
        import uvloop

        runner: Any = uvloop.run
    except ImportError:
        runner = asyncio.run
    result: LoadResult = runner(_load(port, target, concurrency, warmup, duration, server_pid))
    return result


# --- where the time goes (--breakdown) -------------------------------------------------------


async def _asgi_get(app: FastAPI, path: str, authorization: str | None) -> int:
    """One GET through the ASGI app in this process (no sockets); returns the status."""
    raw_path, _, query = path.partition("?")
    headers = [(b"host", HOST.encode()), (b"accept", b"application/json")]
    if authorization:
        headers.append((b"authorization", authorization.encode()))
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": raw_path,
        "raw_path": raw_path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": headers,
        "client": (HOST, 1),
        "server": (HOST, 80),
    }
    status = 0

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: MutableMapping[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(scope, receive, send)
    return status


def _cpu_ms(action: Callable[[], object], calls: int) -> float:
    """CPU milliseconds per call of ``action`` (after a few unmeasured calls)."""
    for _ in range(10):
        action()
    start = time.process_time()
    for _ in range(calls):
        action()
    return round((time.process_time() - start) / calls * 1000, 3)


def breakdown(home_root: Path, setup: Setup, targets: Sequence[Target]) -> dict[str, float]:
    """CPU ms per request of each target in this process, one request at a time, with
    FastAPI's thread pool and with it made inline; then the pieces of each request."""
    coordinator = open_coordinator(open_coordinator_home(home_root))
    app = create_app(coordinator)
    add_baseline_routes(app)
    results: dict[str, float] = {}
    real_run_sync = anyio.to_thread.run_sync

    async def inline(function: Callable[..., Any], *args: Any, **_options: Any) -> Any:
        return function(*args)

    async def measure(label: str) -> None:
        for target in targets:
            path = target.paths[0]
            if await _asgi_get(app, path, target.authorization) != 200:
                raise RuntimeError(f"breakdown: GET {path} did not answer 200")
            calls = 2000 if target.authorization is None else 300
            start = time.process_time()
            for _ in range(calls):
                await _asgi_get(app, path, target.authorization)
            results[f"{label}: {target.name}"] = round(
                (time.process_time() - start) / calls * 1000, 3
            )

    try:
        asyncio.run(measure("ASGI, thread pool"))
        anyio.to_thread.run_sync = inline  # type: ignore[assignment]
        asyncio.run(measure("ASGI, thread pool inline"))
    finally:
        anyio.to_thread.run_sync = real_run_sync

    engine = coordinator.engine
    token = setup.buyer.api_key
    with Session(engine) as session:
        principal = authenticate(session, token)

    def authenticated() -> None:
        with Session(engine) as session:
            authenticate(session, token)
            session.rollback()

    results["piece: Session + authenticate() + rollback"] = _cpu_ms(authenticated, 2000)
    query = CatalogFilter(modality="tabular", max_price=Decimal("0.005"), limit=20)
    with Session(engine) as session:
        results["piece: search_catalog() (count + page)"] = _cpu_ms(
            lambda: search_catalog(session, query), 1000
        )
        rows, total = search_catalog(session, query)

        def page() -> bytes:
            items = [listing_view(row, development_mode=True, host=None) for row in rows]
            body = {"items": items, "total": total, "limit": 20, "offset": 0}
            return ListingPage.model_validate(body).model_dump_json().encode()

        results["piece: listing_view() x 20 + ListingPage + JSON"] = _cpu_ms(page, 1000)
        job_id = setup.job_ids[0]

        def one_job() -> None:
            job = visible_job(session, principal, job_id)
            job_view(job, job_datasets(session, job.id), job_events(session, job.id))

        results["piece: visible_job + job_datasets + job_events + view"] = _cpu_ms(one_job, 1000)
        results["piece: list_jobs() (count + page of 20)"] = _cpu_ms(
            lambda: list_jobs(session, principal, status=None, limit=20, offset=0), 1000
        )
        jobs, _ = list_jobs(session, principal, status=None, limit=20, offset=0)
        results["piece: job_datasets + job_events for each of 20 jobs"] = _cpu_ms(
            lambda: [(job_datasets(session, job.id), job_events(session, job.id)) for job in jobs],
            200,
        )
    database = engine.url.database
    coordinator.close()
    if database:
        raw = sqlite3.connect(database)

        def raw_search() -> None:
            raw.execute(_RAW_COUNT, ("tabular", 0.005)).fetchone()
            raw.execute(_RAW_PAGE, ("tabular", 0.005)).fetchall()

        results["floor: the catalog's two SQL statements, sqlite3 directly"] = _cpu_ms(
            raw_search, 2000
        )
        raw.close()
    return results


# --- orchestration -----------------------------------------------------------------------


def check_target(client: httpx.Client, target: Target) -> None:
    """One request of each path must succeed with a JSON body before the load starts."""
    headers = {"Authorization": target.authorization} if target.authorization else {}
    for path in target.paths[:3]:
        response = client.get(path, headers=headers)
        if response.status_code != 200:
            raise RuntimeError(f"{target.name}: GET {path}: {response.status_code} {response.text}")
        response.json()


def _table(results: Sequence[LoadResult]) -> str:
    lines = [
        f"{'target':<34} {'req/s':>7} {'vs /bare':>8} {'p50 ms':>7} {'p99 ms':>7} {'errors':>6} "
        f"{'server CPU/req':>14}  CPUs: server client other"
    ]
    for result in results:
        ratio = f"{result.ratio_to_bare:.2f}x" if result.ratio_to_bare is not None else "-"
        per_request = (
            f"{result.server_cpu_ms_per_request:.3f} ms"
            if result.server_cpu_ms_per_request is not None
            else "-"
        )
        other = "-" if result.other_cpus is None else f"{result.other_cpus:.2f}"
        server = "-" if result.server_cpus is None else f"{result.server_cpus:.2f}"
        lines.append(
            f"{result.target:<34} {result.requests_per_s:>7,.0f} {ratio:>8} {result.p50_ms:>7.2f} "
            f"{result.p99_ms:>7.2f} {result.errors:>6} {per_request:>14}        {server:>6} "
            f"{result.client_cpus:>6.2f} {other:>5}"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small catalog, 1 s + 3 s per target")
    parser.add_argument("--listings", type=int, default=None, help="catalog size (default 1000)")
    parser.add_argument("--jobs", type=int, default=50, help="jobs per buyer (two buyers)")
    parser.add_argument("--nodes", type=int, default=4, help="real data-host nodes")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--duration", type=float, default=None, help="measured s (default 10)")
    parser.add_argument("--warmup", type=float, default=None, help="unmeasured s (default 2)")
    parser.add_argument("--loop", default="auto", choices=("auto", "asyncio", "uvloop"))
    parser.add_argument("--http", default="auto", choices=("auto", "h11", "httptools"))
    parser.add_argument(
        "--breakdown",
        action="store_true",
        help="then time each request and its pieces in-process, one at a time",
    )
    parser.add_argument("--json", action="store_true", help="print results as JSON")
    args = parser.parse_args()
    listings = args.listings or (200 if args.quick else 1000)
    duration = args.duration or (3.0 if args.quick else 10.0)
    warmup = args.warmup if args.warmup is not None else (1.0 if args.quick else 2.0)
    jobs = min(args.jobs, 20) if args.quick else args.jobs
    load_average = os.getloadavg()[0]

    with tempfile.TemporaryDirectory(prefix="bench-api-load-") as directory:
        root = Path(directory)
        home = init_coordinator_home(root / "coordinator", "bench", dev_mode=True)
        prepare_database(home.database_url)
        coordinator = open_coordinator(home)
        try:
            admin_key = bootstrap_admin(coordinator)
        finally:
            coordinator.close()
        server, info = start_server(home.root, args.loop, args.http)
        try:
            base = f"http://{HOST}:{info.port}"
            with httpx.Client(base_url=base, timeout=60) as client:
                setup = populate(
                    client,
                    admin_key,
                    root / "nodes",
                    listings=listings,
                    jobs=jobs,
                    nodes=args.nodes,
                )
                bearer = f"Bearer {setup.buyer.api_key}"
                targets = [
                    Target("GET /bare (async, no auth)", ["/bare"], None),
                    Target("GET /bare-sync (threadpool)", ["/bare-sync"], None),
                    Target("GET /v1/catalog (search)", [CATALOG_QUERY], bearer),
                    Target(
                        "GET /v1/catalog (every query new)",
                        [f"{COLD_CATALOG_QUERY}{index:06d}" for index in range(COLD_QUERIES)],
                        bearer,
                    ),
                    Target(
                        "GET /v1/jobs/{id}", [f"/v1/jobs/{job}" for job in setup.job_ids], bearer
                    ),
                    Target("GET /v1/jobs?limit=20", [JOBS_QUERY], bearer),
                ]
                for target in targets:
                    check_target(client, target)
            context = multiprocessing.get_context("spawn")
            results: list[LoadResult] = []
            with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
                for target in targets:
                    results.append(
                        pool.submit(
                            run_load,
                            info.port,
                            target,
                            args.concurrency,
                            warmup,
                            duration,
                            info.pid,
                        ).result()
                    )
        finally:
            server.terminate()
            server.join(30)
        pieces = breakdown(home.root, setup, targets) if args.breakdown else {}

    bare = results[0].requests_per_s
    for result in results:
        result.ratio_to_bare = round(result.requests_per_s / bare, 3) if bare else None
    errors = sum(result.errors for result in results)
    report = {
        "cpu": cpu_model(),
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
        "load_average_1m_before": round(load_average, 2),
        "server": {"loop": info.loop, "http": info.http, "workers": 1, "access_log": False},
        "client": {
            "kind": "asyncio raw HTTP/1.1 keep-alive, separate process",
            "concurrency": args.concurrency,
            "warmup_s": warmup,
            "duration_s": duration,
        },
        "setup": {
            "listings": setup.listings,
            "catalog_query": CATALOG_QUERY,
            "catalog_matches": setup.catalog_matches,
            "jobs_per_buyer": setup.jobs_total,
            "buyers": 2,
            "seconds": round(setup.seconds, 1),
        },
        "results": [asdict(result) for result in results],
        "errors": errors,
        "breakdown_cpu_ms": pieces,
    }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(
            f"{report['cpu']}, {report['cpus']} CPUs, Python {report['python']}; load average "
            f"before {report['load_average_1m_before']}"
        )
        print(
            f"server: uvicorn, 1 worker, loop {info.loop}, http {info.http}, no access log; "
            f"client: {args.concurrency} keep-alive connections from a second process "
            "(same 2 cores)"
        )
        print(
            f"catalog: {setup.listings} listings ({setup.catalog_matches} match the search); "
            f"2 buyers x {setup.jobs_total} jobs; setup {setup.seconds:.1f} s; "
            f"{warmup:g} s warm-up + {duration:g} s per target"
        )
        print(_table(results))
        print("target: our endpoints >= 0.50x of GET /bare")
        for result in results:
            if result.first_error:
                print(f"{result.target}: first error: {result.first_error}")
        if pieces:
            print("in-process, one request at a time (CPU ms per request or per piece):")
            for name, value in pieces.items():
                print(f"  {name:<64} {value:>7.3f}")
    if errors:
        sys.exit(1)


if __name__ == "__main__":
    main()
