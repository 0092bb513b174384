"""The marketplace through the ``tally`` command line, on real processes.

``tally coordinator up`` runs as a child process on free loopback ports with its Flower
SuperLink; admins, creators, buyers and auditors then act only through ``tally``
commands, each its own process, as people and scripts would. The shutdown tests check
that stopping ``tally coordinator up`` leaves no SuperLink (or its SuperExec helper) and
no listening port behind.
"""

from __future__ import annotations

import csv
import inspect
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from tally_runner import TALLY, ok, refused, tally

READY_SECONDS = 90.0
STOP_SECONDS = 30.0
PRICE = "0.001"
ROWS = 400


# -- processes -------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _stat(pid: int) -> tuple[str, int, int] | None:
    """``(state, parent pid, start time)`` of ``pid`` from /proc, or None if it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    fields = raw[raw.rfind(")") + 2 :].split()
    return fields[0], int(fields[1]), int(fields[19])


def _alive(pid: int, start: int) -> bool:
    """Whether ``pid`` is still the (non-zombie) process that started at ``start``."""
    stat = _stat(pid)
    return stat is not None and stat[0] != "Z" and stat[2] == start


def _command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _descendants(pid: int) -> dict[tuple[int, int], str]:
    """``{(pid, start time): command line}`` of every live descendant of ``pid``."""
    children: dict[int, list[tuple[int, int]]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            stat = _stat(int(entry.name))
            if stat is not None and stat[0] != "Z":
                children.setdefault(stat[1], []).append((int(entry.name), stat[2]))
    found: dict[tuple[int, int], str] = {}
    pending = [pid]
    while pending:
        for child in children.get(pending.pop(), []):
            found[child] = _command_line(child[0])
            pending.append(child[0])
    return found


def _flower_processes_on(port: int) -> list[str]:
    """Command lines of live flower-superlink/superexec processes that name ``port``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        stat = _stat(int(entry.name))
        line = _command_line(int(entry.name))
        if stat is None or stat[0] == "Z" or "flower-super" not in line:
            continue
        if f"--port {port} " in f"{line} " or f":{port} " in f"{line} ":
            found.append(line)
    return found


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


@dataclass
class Coordinator:
    """A ``tally coordinator up`` child process and what the tests need to talk to it."""

    home: Path
    api_port: int
    superlink_port: int
    admin_key: str
    env: dict[str, str]
    output: Path
    process: subprocess.Popen[bytes] | None = None
    #: The SuperLink and its helpers, seen while the coordinator ran.
    children: dict[tuple[int, int], str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def key(self, api_key: str) -> list[str]:
        """The options that point a command at this coordinator with ``api_key``."""
        return ["--coordinator", self.url, "--api-key", api_key]

    def health(self) -> dict[str, Any] | None:
        try:
            value: dict[str, Any] = httpx.get(self.url + "/healthz", timeout=2).json()
        except (httpx.HTTPError, ValueError):
            return None
        return value

    def logs(self) -> str:
        return "".join(
            path.read_text(errors="replace")
            for path in (self.output.with_suffix(".out"), self.output.with_suffix(".err"))
            if path.exists()
        )

    def start(self) -> None:
        """Run ``tally coordinator up`` and return once /healthz says the SuperLink runs."""
        out = self.output.with_suffix(".out").open("ab")
        err = self.output.with_suffix(".err").open("ab")
        with out, err:
            self.process = subprocess.Popen(
                [TALLY, "coordinator", "up", "--home", str(self.home)],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                env=self.env,
            )
        deadline = time.monotonic() + READY_SECONDS
        while True:
            code = self.process.poll()
            if code is not None:
                pytest.fail(f"tally coordinator up exited with {code}:\n{self.logs()}")
            health = self.health()
            if health is not None and health.get("superlink") == "running":
                break
            if time.monotonic() > deadline:
                pytest.fail(f"tally coordinator up was not healthy in time:\n{self.logs()}")
            time.sleep(0.2)
        assert health["status"] == "ok"
        assert health["development_mode"] is True
        # The SuperLink starts its SuperExec helper on its own; remember both.
        while time.monotonic() < deadline:
            self.children.update(_descendants(self.process.pid))
            if any("flower-superexec" in line for line in self.children.values()):
                break
            time.sleep(0.2)
        assert any("flower-superlink" in line for line in self.children.values()), self.children

    def stop(self, signum: signal.Signals) -> int:
        """Send ``signum`` and wait for ``tally coordinator up`` to exit; its status."""
        assert self.process is not None
        self.children.update(_descendants(self.process.pid))
        self.process.send_signal(signum)
        try:
            return self.process.wait(timeout=STOP_SECONDS)
        except subprocess.TimeoutExpired:
            pytest.fail(f"tally coordinator up did not exit within {STOP_SECONDS:g} s")

    def leftovers(self) -> list[str]:
        """Processes of this coordinator still alive: those it started, and any flower
        process naming its SuperLink port."""
        seen = [line for (pid, start), line in self.children.items() if _alive(pid, start)]
        return sorted(set(seen) | set(_flower_processes_on(self.superlink_port)))

    def clean_up(self) -> None:
        """End whatever this test started that is still running (only those processes)."""
        if self.process is not None and self.process.poll() is None:
            self.children.update(_descendants(self.process.pid))
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=STOP_SECONDS)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for pid, start in self.children:
            if _alive(pid, start):
                os.kill(pid, signal.SIGKILL)


def _init_coordinator(
    root: Path, database_url: str | None = None, extra_env: dict[str, str] | None = None
) -> Coordinator:
    """``tally coordinator init --dev`` on free ports; the admin key from its JSON.

    ``extra_env`` is set for the coordinator's processes (init and up)."""
    api_port, superlink_port = _free_port(), _free_port()
    home = root / "coordinator"
    args = [
        "coordinator",
        "init",
        "--name",
        "market",
        "--home",
        str(home),
        "--dev",
        "--port",
        str(api_port),
        "--superlink-port",
        str(superlink_port),
        "--json",
    ]
    if database_url is not None:
        args += ["--database-url", database_url]
    env = {**os.environ, "FLWR_HOME": str(root / "flwr"), **(extra_env or {})}
    result = _run(*args, env=env)
    assert result.returncode == 0, result.stderr
    created = json.loads(result.stdout)
    assert created["development_mode"] is True
    assert created["url"] == f"http://127.0.0.1:{api_port}"
    return Coordinator(home, api_port, superlink_port, created["admin_api_key"], env, root / "up")


@pytest.fixture
def coordinator(tmp_path: Path) -> Iterator[Coordinator]:
    """An initialised coordinator home (not yet up); whatever it starts is ended after."""
    made = _init_coordinator(tmp_path)
    try:
        yield made
    finally:
        made.clean_up()


def _without_env(*names: str) -> dict[str, str]:
    return {key: value for key, value in os.environ.items() if key not in names}


def _run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [TALLY, *args], capture_output=True, text=True, env=env, timeout=120, check=False
    )


# -- the marketplace, end to end ---------------------------------------------------------


def _csv(path: Path) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["x1", "x2", "label"])
        for i in range(ROWS):
            writer.writerow([f"{i * 0.1:.1f}", i % 7, i % 2])
    return path


def _job(dataset_id: str, *extra: str) -> list[str]:
    return ["--dataset", f"{dataset_id}:1.0", "--model", "mlp", "--rounds", "2", *extra]


def _marketplace(root: Path, market: Coordinator) -> None:
    """Accounts, a node that registers and publishes, a buyer's quote and jobs, an
    auditor, revocations: all through ``tally``."""
    admin = market.key(market.admin_key)

    # The admin makes the other parties; each new key is printed once.
    keys: dict[str, str] = {}
    for name, role in (("alice", "creator"), ("bob", "buyer"), ("audrey", "auditor")):
        created = json.loads(ok("account", "create", name, "--role", role, *admin, "--json"))
        assert created["account"]["role"] == role
        assert created["api_key"].startswith("tally_")
        keys[role] = created["api_key"]
    creator, buyer, auditor = (market.key(keys[r]) for r in ("creator", "buyer", "auditor"))
    listed = json.loads(ok("account", "list", *admin, "--json"))
    assert {"alice", "bob", "audrey", "admin"} <= {item["name"] for item in listed["items"]}
    assert "403" in refused("account", "create", "mallory", "--role", "admin", *buyer)

    # A creator's node: identity, evidence, a dataset; then register and publish.
    node = root / "alice-node"
    made = json.loads(ok("host", "init", "--name", "alice-node", "--home", str(node), "--json"))
    ok("host", "attest", "--kind", "dev", "--home", str(node))
    added = json.loads(
        ok(
            "host",
            "dataset",
            "add",
            str(_csv(root / "sensors.csv")),
            "--title",
            "Heart sensor readings",
            "--license",
            "CC-BY-4.0",
            "--price-per-sample",
            PRICE,
            "--currency",
            "USD",
            "--max-epsilon-per-job",
            "3",
            "--home",
            str(node),
            "--json",
        )
    )
    dataset = added["id"]
    assert "403" in refused("host", "register", *buyer, "--home", str(node))
    registered = json.loads(ok("host", "register", *creator, "--home", str(node), "--json"))
    assert registered["host"]["host_did"] == made["creator_did"]
    assert registered["host"]["worker_did"] == made["worker_did"]
    assert registered["host"]["insecure"] is True
    text = ok("host", "register", *creator, "--home", str(node))
    assert made["worker_did"] in text
    assert "INSECURE" in text
    me = json.loads(ok("account", "whoami", *creator, "--json"))
    assert [identity["did"] for identity in me["identities"]] == [made["creator_did"]]

    listing = json.loads(
        ok("host", "dataset", "publish", dataset, *creator, "--home", str(node), "--json")
    )
    assert listing["dataset_id"] == dataset
    log_index = listing["log"]["index"]
    assert isinstance(log_index, int)
    again = ok("host", "dataset", "publish", dataset, *creator, "--home", str(node))
    assert f"log index {log_index}" in again

    # A buyer finds it, looks at its log proof, and prices a job on it.
    found = json.loads(ok("catalog", "search", "--q", "heart", *buyer, "--json"))
    assert [item["dataset_id"] for item in found["items"]] == [dataset]
    assert found["items"][0]["price"] == {"per_sample": PRICE, "currency": "USD"}
    none = json.loads(ok("catalog", "search", "--modality", "image", *buyer, "--json"))
    assert none["items"] == []
    too_dear = json.loads(ok("catalog", "search", "--max-price", "0.0001", *buyer, "--json"))
    assert too_dear["items"] == []
    table = ok("catalog", "search", "--min-epsilon", "2", *buyer)
    assert dataset in table
    assert "Heart sensor readings" in table
    assert "no listings match" in ok("catalog", "search", "--min-epsilon", "5", *buyer)
    shown = json.loads(ok("catalog", "show", dataset, *buyer, "--json"))
    assert shown["proof"]["index"] == log_index
    assert shown["manifest"]["payloadType"] == "application/vnd.in-toto+json"
    shown_text = ok("catalog", "show", dataset, *buyer)
    assert shown["proof"]["tlog_proof"] in shown_text
    assert f"log index  {log_index}" in shown_text

    quote = json.loads(ok("job", "quote", *_job(dataset), *buyer, "--json"))
    planned = 2 * 1 * ROWS
    assert quote["lines"] == [
        {
            "dataset_id": dataset,
            "planned_samples": planned,
            "price_per_sample": PRICE,
            "amount_minor": 80,
        }
    ]
    assert (quote["platform_fee_minor"], quote["total_minor"]) == (8, 88)
    quote_text = ok("job", "quote", *_job(dataset), *buyer)
    for expected in (str(planned), "0.80 USD", "0.08 USD", "0.88 USD", "10 %"):
        assert expected in quote_text
    line = refused("job", "quote", *_job(dataset, "--strategy-option", "mu"), *buyer)
    assert "NAME=NUMBER" in line

    # A budget below the quote is refused (402); one above makes a draft to fund.
    line = refused("job", "create", *_job(dataset), "--budget", "0.50", "--currency", "USD", *buyer)
    assert "HTTP 402" in line
    assert "does not cover the quote of 0.88 USD" in line
    assert json.loads(ok("job", "list", *buyer, "--json"))["items"] == []
    job = json.loads(
        ok(
            "job",
            "create",
            *_job(dataset),
            "--budget",
            "5.00",
            "--currency",
            "USD",
            *buyer,
            "--json",
        )
    )
    assert job["status"] == "draft"
    assert job["budget"] == {"amount_minor": 500, "currency": "USD"}
    funded = json.loads(ok("job", "fund", job["id"], *buyer, "--json"))
    assert funded["status"] == "funded"
    detail = json.loads(ok("job", "show", job["id"], *buyer, "--json"))
    assert [(event["from"], event["to"]) for event in detail["events"]] == [
        (None, "draft"),
        ("draft", "funded"),
    ]
    assert all(isinstance(event["log_index"], int) for event in detail["events"])
    assert "funded" in ok("job", "show", job["id"], *buyer)

    # The creator sees the funded job on its dataset, and what its line pays.
    on_mine = json.loads(ok("job", "list", *creator, "--json"))
    assert [item["id"] for item in on_mine["items"]] == [job["id"]]
    earned = json.loads(ok("account", "earnings", *creator, "--json"))
    [line_item] = earned["datasets"][0]["jobs"]
    assert (line_item["job_id"], line_item["bucket"]) == (job["id"], "committed")
    amount = detail["datasets"][0]["amount_minor"]
    assert earned["totals"] == [{"currency": "USD", "committed": amount, "completed": 0, "lost": 0}]
    shown = ok("account", "earnings", *creator)
    assert f"USD: committed {amount / 100:.2f} USD, completed 0.00 USD" in shown
    assert "HTTP 403" in refused("account", "earnings", *buyer)

    # The auditor reads every job and changes none.
    seen = json.loads(ok("job", "list", *auditor, "--json"))
    assert job["id"] in [item["id"] for item in seen["items"]]
    line = refused("job", "cancel", job["id"], *auditor)
    assert "HTTP 403" in line
    assert "auditor" in line
    assert json.loads(ok("job", "show", job["id"], *auditor, "--json"))["status"] == "funded"
    cancelled = json.loads(
        ok("job", "cancel", job["id"], "--reason", "changed my mind", *buyer, "--json")
    )
    assert (cancelled["status"], cancelled["status_reason"]) == ("cancelled", "changed my mind")
    assert "HTTP 409" in refused("job", "fund", job["id"], *buyer)

    # The creator withdraws the dataset: new jobs on it are refused, naming it.
    revoked = json.loads(
        ok("catalog", "revoke", dataset, "--reason", "consent withdrawn", *creator, "--json")
    )
    assert revoked["status"] == "revoked"
    line = refused("job", "create", *_job(dataset), "--budget", "5.00", "--currency", "USD", *buyer)
    assert f"dataset {dataset} was revoked by its creator" in line
    assert json.loads(ok("catalog", "search", *buyer, "--json"))["items"] == []
    everything = json.loads(ok("catalog", "search", "--include-revoked", *buyer, "--json"))
    assert [item["status"] for item in everything["items"]] == ["revoked"]

    # A node never publishes a dataset it revoked itself.
    ok("host", "dataset", "revoke", dataset, "--reason", "gone", "--home", str(node))
    line = refused("host", "dataset", "publish", dataset, *creator, "--home", str(node))
    assert "revoked on this node" in line

    # Keys: a second key works until revoked, then gets 401; the key is never echoed.
    second = json.loads(ok("account", "key", "create", "--label", "ci", *buyer, "--json"))
    assert (
        json.loads(ok("account", "whoami", *market.key(second["api_key"]), "--json"))["account"][
            "name"
        ]
        == "bob"
    )
    keys_listed = json.loads(ok("account", "key", "list", *buyer, "--json"))
    assert "ci" in [item["label"] for item in keys_listed["items"]]
    ok("account", "key", "revoke", second["key_id"], *buyer)
    result = tally("account", "whoami", *market.key(second["api_key"]))
    assert result.returncode == 1
    assert "HTTP 401" in result.stderr
    assert second["api_key"] not in result.stdout + result.stderr
    assert second["api_key"].rsplit("_", 1)[1] not in result.stdout + result.stderr

    # The key and the coordinator may come from the environment instead.
    env = {
        **_without_env("TALLY_API_KEY"),
        "TALLY_COORDINATOR": market.url,
        "TALLY_API_KEY": keys["buyer"],
    }
    by_env = _run("account", "whoami", "--json", env=env)
    assert by_env.returncode == 0, by_env.stderr
    assert json.loads(by_env.stdout)["account"]["name"] == "bob"
    no_key = _run(
        "job", "list", env=_without_env("TALLY_API_KEY") | {"TALLY_COORDINATOR": market.url}
    )
    assert no_key.returncode == 1
    assert "no API key" in no_key.stderr


@pytest.mark.slow
def test_the_marketplace_through_the_cli(coordinator: Coordinator, tmp_path: Path) -> None:
    coordinator.start()
    _marketplace(tmp_path, coordinator)
    assert coordinator.process is not None
    assert coordinator.process.poll() is None, coordinator.logs()


@pytest.mark.slow
@pytest.mark.postgres
def test_the_marketplace_through_the_cli_on_postgresql(tmp_path: Path) -> None:
    from conftest import _postgres_schema, _skip_without_postgres

    _skip_without_postgres()
    with _postgres_schema(tmp_path) as url:
        # The private schema travels in the URL as options=-csearch_path%3D<schema>.
        assert "%" in url, url
        market = _init_coordinator(tmp_path, database_url=url)
        try:
            market.start()
            _marketplace(tmp_path, market)
        finally:
            market.clean_up()


def test_a_database_url_with_a_percent_sign_can_be_used(tmp_path: Path) -> None:
    folder = tmp_path / "50%"
    folder.mkdir()
    url = f"sqlite:///{folder / 'coordinator.db'}".replace("%", "%25")
    created = json.loads(
        ok(
            "coordinator",
            "init",
            "--name",
            "market",
            "--home",
            str(tmp_path / "home"),
            "--database-url",
            url,
            "--json",
        )
    )
    assert created["admin_api_key"].startswith("tally_")
    assert (folder / "coordinator.db").exists()


def test_an_unreachable_coordinator_is_one_clear_line() -> None:
    url = f"http://127.0.0.1:{_free_port()}"
    line = refused("account", "whoami", "--coordinator", url, "--api-key", "tally_00_secret")
    assert f"cannot reach the coordinator at {url}" in line
    assert "secret" not in line


# -- stopping ----------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(
    "signum", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP], ids=["SIGTERM", "SIGINT", "SIGHUP"]
)
def test_a_stop_signal_stops_the_coordinator_and_its_superlink(
    coordinator: Coordinator, signum: signal.Signals
) -> None:
    coordinator.start()
    code = coordinator.stop(signum)
    assert coordinator.leftovers() == []
    assert not _listening(coordinator.api_port)
    assert not _listening(coordinator.superlink_port)
    assert code == 0, coordinator.logs()
    assert "coordinator stopped" in coordinator.logs()


@pytest.mark.slow
@pytest.mark.parametrize("taken", ["api", "superlink"])
def test_up_on_a_port_in_use_fails_clearly_and_leaves_no_superlink(
    coordinator: Coordinator, taken: str
) -> None:
    port = coordinator.api_port if taken == "api" else coordinator.superlink_port
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        result = subprocess.run(
            [TALLY, "coordinator", "up", "--home", str(coordinator.home)],
            capture_output=True,
            text=True,
            env=coordinator.env,
            timeout=READY_SECONDS,
            check=False,
        )
    assert result.returncode != 0, result.stdout
    assert str(port) in result.stderr
    assert "in use" in result.stderr
    assert "Traceback" not in result.stderr
    assert _flower_processes_on(coordinator.superlink_port) == []
    assert not _listening(coordinator.superlink_port)
    assert not _listening(coordinator.api_port)


# -- the command line itself -------------------------------------------------------------


def test_help_lists_every_role_without_importing_the_heavy_modules() -> None:
    probe = (
        "import sys\n"
        "from clients.cli.main import app\n"
        "try:\n"
        "    app(['--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "heavy = ('uvicorn', 'fastapi', 'flwr', 'torch', 'sqlalchemy', 'coordinator.api')\n"
        "print('HEAVY', sorted(name for name in heavy if name in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert "HEAVY []" in result.stdout
    for panel, command in (
        ("Operators", "coordinator"),
        ("Log operators", "witness"),
        ("Everyone", "account"),
        ("Buyers", "catalog"),
        ("Buyers", "job"),
    ):
        assert panel in result.stdout
        assert f" {command} " in result.stdout


def test_the_listed_summaries_are_the_commands_own() -> None:
    from clients.cli.main import COMMANDS, load_command

    for name, entry in COMMANDS.items():
        command = load_command(name)
        assert command.help is not None, name
        assert entry.summary == inspect.cleandoc(command.help).splitlines()[0], name


@pytest.mark.parametrize(
    "command",
    [
        ["account", "create"],
        ["account", "list"],
        ["account", "whoami"],
        ["account", "key", "create"],
        ["account", "key", "list"],
        ["account", "key", "revoke"],
        ["catalog", "search"],
        ["catalog", "show"],
        ["catalog", "revoke"],
        ["job", "quote"],
        ["job", "create"],
        ["job", "show"],
        ["job", "list"],
        ["job", "fund"],
        ["job", "cancel"],
        ["host", "register"],
        ["host", "dataset", "publish"],
    ],
)
def test_every_role_command_has_an_example_and_json(command: list[str]) -> None:
    from typer.testing import CliRunner

    from clients.cli.main import app

    result = CliRunner().invoke(app, [*command, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "Example:" in result.output
    assert "--json" in result.output
    assert "--coordinator" in result.output
    assert "TALLY_API_KEY" in result.output


def test_superlink_tls_and_supernode_keys_are_configured_and_checked(tmp_path: Path) -> None:
    home = tmp_path / "home"
    ok("coordinator", "init", "--name", "market", "--home", str(home), "--json")
    pem = {}
    for name in ("ca", "cert", "key"):
        pem[name] = tmp_path / f"{name}.pem"
        pem[name].write_text(f"-----BEGIN TEST {name.upper()}-----\nAA==\n-----END TEST-----\n")
    before = (home / "coordinator.json").read_bytes()
    not_pem = tmp_path / "key.txt"
    not_pem.write_text("hello\n")
    tls_args = ["--ca-cert", str(pem["ca"]), "--cert", str(pem["cert"]), "--home", str(home)]
    line = refused("coordinator", "tls", *tls_args, "--key", str(not_pem))
    assert "--key" in line
    assert "not a PEM file" in line
    assert (home / "coordinator.json").read_bytes() == before

    configured = json.loads(ok("coordinator", "tls", *tls_args, "--key", str(pem["key"]), "--json"))
    assert configured["supernode_auth"] is True
    assert configured["tls"]["keyfile"] == str(pem["key"])
    stored = json.loads((home / "coordinator.json").read_text())
    assert stored["superlink"]["tls"]["ca_certfile"] == str(pem["ca"])

    # A private key (or anything but an OpenSSH ECDSA public key) is never sent.
    private = tmp_path / "supernode"
    private.write_text("-----BEGIN OPENSSH PRIVATE KEY-----\nAA==\n")
    line = refused("coordinator", "supernode", "register", str(private), "--home", str(home))
    assert "is a private key" in line
    ed25519 = tmp_path / "ed.pub"
    ed25519.write_text("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIC x\n")
    line = refused("coordinator", "supernode", "register", str(ed25519), "--home", str(home))
    assert "not an OpenSSH ECDSA public key" in line
