"""``tally job …``: buyers price, create, fund, follow and cancel training jobs.

A job names datasets from the catalog with the ε (and δ) to spend on each, a vetted model
and its hyper-parameters, and an aggregation strategy; ``quote`` prices that plan without
creating anything, ``create`` makes a draft with a budget that must cover the quote, and
``fund`` places the hold. The coordinator checks every term; this module only turns what
was typed into a JobSpec (``clients.sdk.spec_from_options``) and shows the answers. It must
never run code of the buyer's on anyone's machine, and never compute a price itself.
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from clients.cli.output import JsonFlag, console, emit_json, fail
from clients.cli.remote import (
    DEFAULT_COORDINATOR,
    ApiKeyOption,
    CoordinatorOption,
    compact_table,
    coordinator_client,
    money,
    plain,
    when,
)
from clients.sdk import spec_from_options

app = typer.Typer(no_args_is_help=True, help="Price, create, fund, follow and cancel jobs.")

_PLAN = "Plan"
_INTEGER = re.compile(r"^[+-]?[0-9]+$")
_OPTION_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")

JobArgument = Annotated[str, typer.Argument(help="The job id (job_…).")]
DatasetsOption = Annotated[
    list[str],
    typer.Option(
        "--dataset",
        metavar="ID:EPS[:DELTA]",
        help="A dataset and the ε (and δ, default 1e-5) to spend on it; repeat for more.",
        rich_help_panel=_PLAN,
    ),
]
ModelOption = Annotated[
    str, typer.Option(help="A vetted model, e.g. mlp (GET /v1/models).", rich_help_panel=_PLAN)
]
RoundsOption = Annotated[int, typer.Option(min=1, help="Federated rounds.", rich_help_panel=_PLAN)]
LocalEpochsOption = Annotated[
    int, typer.Option(min=1, help="Local epochs per round.", rich_help_panel=_PLAN)
]
BatchSizeOption = Annotated[
    int, typer.Option(min=1, help="Batch size on each host.", rich_help_panel=_PLAN)
]
LearningRateOption = Annotated[
    str, typer.Option(help="Learning rate, an exact decimal.", rich_help_panel=_PLAN)
]
StrategyOption = Annotated[
    str,
    typer.Option(help="fedavg, fedprox, fedadam, fedtrimmedavg or krum.", rich_help_panel=_PLAN),
]
StrategyOptionsOption = Annotated[
    list[str] | None,
    typer.Option(
        "--strategy-option",
        metavar="NAME=NUMBER",
        help="A numeric option of the strategy, e.g. proximal_mu=0.1; repeatable.",
        rich_help_panel=_PLAN,
    ),
]
MinHostsOption = Annotated[
    int,
    typer.Option(min=1, help="Fewest hosts that must take part in a round.", rich_help_panel=_PLAN),
]


def strategy_options(items: list[str] | None) -> dict[str, int | float]:
    """``["mu=0.1", "n=2"]`` → ``{"mu": 0.1, "n": 2}``; exits 1 naming a malformed item."""
    options: dict[str, int | float] = {}
    for item in items or []:
        name, sep, raw = item.partition("=")
        name, raw = name.strip(), raw.strip()
        if not sep or not _OPTION_NAME.fullmatch(name):
            fail(f"--strategy-option {item!r}: write it as NAME=NUMBER, e.g. proximal_mu=0.1")
        if name in options:
            fail(f"--strategy-option {name} is given twice; give it once")
        if _INTEGER.fullmatch(raw):
            options[name] = int(raw)
            continue
        try:
            value = float(raw)
        except ValueError:
            value = math.nan
        if not math.isfinite(value):
            fail(f"--strategy-option {name}={raw!r}: the value must be a finite number")
        options[name] = value
    return options


def _spec(
    datasets: list[str],
    model: str,
    rounds: int,
    local_epochs: int,
    batch_size: int,
    learning_rate: str,
    strategy: str,
    strategy_option: list[str] | None,
    min_hosts: int,
) -> dict[str, Any]:
    """The JobSpec for what was typed; exits 1 naming the first thing that is malformed."""
    options = strategy_options(strategy_option)
    try:
        return spec_from_options(
            datasets=datasets,
            model=model,
            rounds=rounds,
            local_epochs=local_epochs,
            batch_size=batch_size,
            learning_rate=learning_rate,
            strategy=strategy,
            strategy_options=options,
            min_hosts=min_hosts,
        )
    except ValueError as exc:
        fail(str(exc))


def _quote_table(
    lines: list[dict[str, Any]], currency: str, *, fee_bps: int, fee: int, total: int
) -> Table:
    table = compact_table("dataset", "planned samples", "price / sample", "amount")
    for column in table.columns[1:]:
        column.justify = "right"
    for line in lines:
        table.add_row(
            plain(line.get("dataset_id")),
            str(line.get("planned_samples")),
            plain(f"{line.get('price_per_sample')} {currency}"),
            money(line.get("amount_minor"), currency),
        )
    table.add_section()
    table.add_row(f"platform fee ({fee_bps / 100:g} %)", "", "", money(fee, currency))
    table.add_row(Text("total", style="bold"), "", "", Text(money(total, currency), style="bold"))
    return table


@app.command("quote")
def quote(
    dataset: DatasetsOption,
    model: ModelOption,
    rounds: RoundsOption,
    local_epochs: LocalEpochsOption = 1,
    batch_size: BatchSizeOption = 32,
    learning_rate: LearningRateOption = "0.05",
    strategy: StrategyOption = "fedavg",
    strategy_option: StrategyOptionsOption = None,
    min_hosts: MinHostsOption = 1,
    coordinator: CoordinatorOption = DEFAULT_COORDINATOR,
    api_key: ApiKeyOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Price a job without creating it: per dataset, planned samples times price, plus the fee.

    Example: tally job quote --dataset ds_01hx2c3d4e5f6g7h8j9k0m1n2p:1.0 --model mlp --rounds 3
    """
    spec = _spec(
        dataset,
        model,
        rounds,
        local_epochs,
        batch_size,
        learning_rate,
        strategy,
        strategy_option,
        min_hosts,
    )
    with coordinator_client(coordinator, api_key) as client:
        answer = client.quote(spec)
    priced: dict[str, Any] = answer["quote"]
    if as_json:
        emit_json(priced)
        return
    console.print(
        _quote_table(
            priced["lines"],
            priced["currency"],
            fee_bps=priced["platform_fee_bps"],
            fee=priced["platform_fee_minor"],
            total=priced["total_minor"],
        )
    )
    console.print(
        f"a budget of at least {money(priced['total_minor'], priced['currency'])} covers it: "
        "tally job create … --budget AMOUNT --currency "
        f"{priced['currency']}",
        markup=False,
    )


@app.command("create")
def create(
    dataset: DatasetsOption,
    model: ModelOption,
    rounds: RoundsOption,
    budget: Annotated[
        str, typer.Option(help="The most you will pay, an exact decimal, e.g. 25.00.")
    ],
    currency: Annotated[str, typer.Option(help="The budget's currency, e.g. USD.")],
    local_epochs: LocalEpochsOption = 1,
    batch_size: BatchSizeOption = 32,
    learning_rate: LearningRateOption = "0.05",
    strategy: StrategyOption = "fedavg",
    strategy_option: StrategyOptionsOption = None,
    min_hosts: MinHostsOption = 1,
    coordinator: CoordinatorOption = DEFAULT_COORDINATOR,
    api_key: ApiKeyOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Create a draft job; refused unless the budget covers the quote. Fund it next.

    Example: tally job create --dataset ds_01hx2c3d4e5f6g7h8j9k0m1n2p:1.0 --model mlp
    --rounds 3 --budget 25.00 --currency USD
    """
    spec = _spec(
        dataset,
        model,
        rounds,
        local_epochs,
        batch_size,
        learning_rate,
        strategy,
        strategy_option,
        min_hosts,
    )
    with coordinator_client(coordinator, api_key) as client:
        job = client.create_job(spec, budget, currency)
    if as_json:
        emit_json(job)
        return
    _print_job(job)
    console.print(f"next: tally job fund {job['id']}", markup=False)


def _print_job(job: dict[str, Any]) -> None:
    """A job's state, plan, money, datasets and (if any) events."""
    quote_part: dict[str, Any] = job.get("quote") or {}
    budget: dict[str, Any] = job.get("budget") or {}
    currency = quote_part.get("currency") or budget.get("currency")
    head = Text.assemble(plain(job.get("id")), " ", (str(job.get("status")), "bold"))
    if job.get("status_reason"):
        head += Text(" (") + plain(job["status_reason"]) + Text(")")
    console.print(head)
    strategy = job.get("strategy") or {}
    options = ", ".join(f"{k}={v}" for k, v in sorted((strategy.get("options") or {}).items()))
    console.print(
        plain(
            f"  model {job.get('model')}, {job.get('rounds')} round(s) of "
            f"{job.get('local_epochs')} local epoch(s), batch {job.get('batch_size')}, "
            f"learning rate {job.get('learning_rate')}, strategy {strategy.get('name')}"
            + (f" ({options})" if options else "")
            + f", at least {job.get('min_hosts')} host(s)"
        )
    )
    console.print(
        plain(
            f"  quote {money(quote_part.get('total_minor'), currency)}, budget "
            f"{money(budget.get('amount_minor'), budget.get('currency'))}; buyer "
            f"{job.get('buyer')}, created {when(job.get('created_at'))}"
        )
    )
    if job.get("development_mode"):
        console.print("  [bold yellow]development mode:[/] hosts may be INSECURE")
    datasets: list[dict[str, Any]] = job.get("datasets") or []
    if datasets:
        table = compact_table()
        table.add_column("dataset", no_wrap=True)
        for header in ("ε", "δ", "samples", "price", "amount"):
            table.add_column(header)
        for item in datasets:
            table.add_row(
                plain(item.get("dataset_id")),
                plain(item.get("target_epsilon")),
                plain(item.get("delta")),
                str(item.get("planned_samples")),
                plain(item.get("price_per_sample")),
                money(item.get("amount_minor"), currency),
            )
        console.print(table)


@app.command("show")
def show(
    job_id: JobArgument,
    coordinator: CoordinatorOption = DEFAULT_COORDINATOR,
    api_key: ApiKeyOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Show a job: plan, quote, budget, datasets and every state change with its log index.

    Example: tally job show job_01hx2c3d4e5f6g7h8j9k0m1n2p --json
    """
    with coordinator_client(coordinator, api_key) as client:
        job = client.get_job(job_id)
    if as_json:
        emit_json(job)
        return
    _print_job(job)
    events: list[dict[str, Any]] = job.get("events") or []
    if events:
        console.print("events")
    for event in events:
        line = Text(f"  {when(event.get('at'))}  ")
        line += plain(f"{event.get('from') or 'new'} → {event.get('to')}")
        line += Text(" by ") + plain(event.get("actor"))
        line += Text(f", log index {event.get('log_index')}")
        if event.get("reason"):
            line += Text(": ") + plain(event["reason"])
        console.print(line)


@app.command("list")
def list_(
    status: Annotated[
        str | None,
        typer.Option(help="Only jobs in this state: draft, funded, running, completed, …"),
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=200, help="At most this many.")] = 50,
    offset: Annotated[int, typer.Option(min=0, help="Skip this many first.")] = 0,
    coordinator: CoordinatorOption = DEFAULT_COORDINATOR,
    api_key: ApiKeyOption = None,
    as_json: JsonFlag = False,
) -> None:
    """List jobs, newest first: a buyer's own; admins and auditors see all.

    Example: tally job list --status funded
    """
    with coordinator_client(coordinator, api_key) as client:
        page = client.list_jobs(status=status, limit=limit, offset=offset)
    if as_json:
        emit_json(page)
        return
    items: list[dict[str, Any]] = page["items"]
    if not items:
        console.print("no jobs")
        return
    table = compact_table()
    table.add_column("id", no_wrap=True)
    table.add_column("status")
    for header in ("quote", "budget"):
        table.add_column(header, justify="right", no_wrap=True)
    table.add_column("created", no_wrap=True)
    for job in items:
        quote_part = job.get("quote") or {}
        budget = job.get("budget") or {}
        table.add_row(
            plain(job.get("id")),
            plain(job.get("status")),
            money(quote_part.get("total_minor"), quote_part.get("currency")),
            money(budget.get("amount_minor"), budget.get("currency")),
            when(job.get("created_at"), day=True),
        )
    console.print(table)
    console.print(f"{len(items)} of {page.get('total', len(items))}")


@app.command("fund")
def fund(
    job_id: JobArgument,
    payment_method: Annotated[
        str | None,
        typer.Option(
            help="The payment method to charge on the stripe rail (e.g. pm_card_visa in "
            "Stripe's test mode); the ledger rail needs none."
        ),
    ] = None,
    coordinator: CoordinatorOption = DEFAULT_COORDINATOR,
    api_key: ApiKeyOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Fund a draft job: its terms are checked again, then the quote is paid and held.

    The quote is paid through the coordinator's payment rail and held for the job.

    Example: tally job fund job_01hx2c3d4e5f6g7h8j9k0m1n2p --payment-method pm_card_visa
    """
    with coordinator_client(coordinator, api_key) as client:
        job = client.fund_job(job_id, payment_method=payment_method)
    if as_json:
        emit_json(job)
        return
    budget = job.get("budget") or {}
    payment = job.get("payment") or {}
    console.print(
        plain(
            f"{job.get('id')} is {job.get('status')} "
            f"(budget {money(budget.get('amount_minor'), budget.get('currency'))}; "
            f"payment on the {payment.get('rail')} rail: {payment.get('status')})"
        )
    )
    if payment.get("status") == "requires_action":
        console.print(
            plain(
                f"the buyer must confirm payment {payment.get('payment')} with its client "
                "secret; the job is funded when the rail reports it succeeded"
            )
        )


@app.command("cancel")
def cancel(
    job_id: JobArgument,
    reason: Annotated[str | None, typer.Option(help="Why (kept with the job).")] = None,
    coordinator: CoordinatorOption = DEFAULT_COORDINATOR,
    api_key: ApiKeyOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Cancel a job that has not ended (its buyer, or an admin); logged.

    Example: tally job cancel job_01hx2c3d4e5f6g7h8j9k0m1n2p --reason "wrong dataset"
    """
    with coordinator_client(coordinator, api_key) as client:
        job = client.cancel_job(job_id, reason)
    if as_json:
        emit_json(job)
        return
    console.print(plain(f"{job.get('id')} is {job.get('status')}"))


# start, watch and model live beside these commands.
from clients.cli import job_training as _job_training  # noqa: E402,F401
