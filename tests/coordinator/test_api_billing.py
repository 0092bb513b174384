"""Money through the API: funding places the quote in a hold, cancelling releases it to
the buyer, each party sees only its own accounts and lines, and the books always balance."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from coordinator_fixtures import Marketplace, build_marketplace, create_party


@pytest.fixture
def market(tmp_path: Path, database_url: str) -> Iterator[Marketplace]:
    built = build_marketplace(tmp_path, database_url=database_url)
    yield built
    built.client.close()
    built.coordinator.close()


def _get(market: Marketplace, path: str, headers: dict[str, str]) -> dict[str, Any]:
    response = market.client.get(path, headers=headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _zero(market: Marketplace) -> None:
    trial = _get(market, "/v1/billing/balances", market.admin.headers)["trial_balance"]
    assert trial
    assert set(trial.values()) == {"0"}, trial


def test_funding_holds_the_quote_and_cancelling_refunds_it(market: Marketplace) -> None:
    job = market.create_job()
    statement = _get(market, f"/v1/jobs/{job['id']}/statement", market.buyer.headers)
    assert statement["held_minor"] == "0"
    funded = market.client.post(f"/v1/jobs/{job['id']}/fund", headers=market.buyer.headers)
    assert funded.status_code == 200, funded.text
    quote = str(job["quote"]["total_minor"])
    statement = _get(market, f"/v1/jobs/{job['id']}/statement", market.buyer.headers)
    assert statement["held_minor"] == statement["hold_left_minor"] == quote
    assert [line["kind"] for line in statement["lines"]] == ["hold"]
    accounts = {
        item["kind"]: item
        for item in _get(market, "/v1/billing/balances", market.buyer.headers)["accounts"]
    }
    assert accounts["hold"]["posted_minor"] == quote
    assert accounts["payable"]["posted_minor"] == "0"
    _zero(market)
    # Funding again is refused and holds nothing more.
    again = market.client.post(f"/v1/jobs/{job['id']}/fund", headers=market.buyer.headers)
    assert again.status_code == 409
    cancelled = market.client.post(f"/v1/jobs/{job['id']}/cancel", headers=market.buyer.headers)
    assert cancelled.status_code == 200, cancelled.text
    statement = _get(market, f"/v1/jobs/{job['id']}/statement", market.buyer.headers)
    assert statement["released_minor"] == quote
    assert statement["hold_left_minor"] == "0"
    payable = [
        item
        for item in _get(market, "/v1/billing/balances", market.buyer.headers)["accounts"]
        if item["kind"] == "payable"
    ]
    assert payable[0]["posted_minor"] == quote  # the refund owed to the buyer
    _zero(market)


def test_each_party_sees_only_its_own_money(market: Marketplace) -> None:
    job = market.create_job()
    market.client.post(f"/v1/jobs/{job['id']}/fund", headers=market.buyer.headers)
    other = create_party(market.client, market.admin.api_key, "mallory", "buyer")
    assert _get(market, "/v1/billing/balances", other.headers)["accounts"] == []
    assert "trial_balance" not in _get(market, "/v1/billing/balances", other.headers)
    response = market.client.get(f"/v1/jobs/{job['id']}/statement", headers=other.headers)
    assert response.status_code == 404
    # The dataset's creator sees the job but only the lines that pay it (none yet).
    mine = _get(market, f"/v1/jobs/{job['id']}/statement", market.creator.headers)
    assert mine["lines"] == []
    assert mine["paid_to_you_minor"] == "0"
    assert "held_minor" not in mine
    auditor = _get(market, "/v1/billing/balances", market.auditor.headers)
    assert {item["kind"] for item in auditor["accounts"]} >= {"hold", "clearing"}
    response = market.client.get("/v1/jobs/nonsense/statement", headers=market.buyer.headers)
    assert response.status_code == 422


def _settled_round(market: Marketplace, job: dict[str, Any], round_number: int) -> None:
    """Settle a round as the training loop does (billing's settle_round on a JobRound)."""
    import json as _json
    from decimal import Decimal

    from billing.settlement import MeteredLine, Royalty, settle_round
    from coordinator.database import writing
    from coordinator.tables import JobRound

    coordinator = market.coordinator
    with writing(coordinator.engine) as session:
        settle_round(
            session, job_id=job["id"], round_number=round_number, proof_digest="d" * 64,
            currency="USD", fee_bps=0, now=coordinator.now(),
            lines=[
                MeteredLine(
                    market.node.dataset_id, 100, Decimal("0.01"),
                    Royalty.sole(market.creator.account_id),
                )
            ],
        )  # fmt: skip
        session.add(
            JobRound(
                job_id=job["id"], round_number=round_number, status="aggregated",
                samples=100, cost_minor=100, summary=_json.dumps({}),
                finished_at=coordinator.now(),
            )
        )  # fmt: skip


def test_a_dispute_freezes_a_rounds_royalties_until_an_admin_refunds_them(
    market: Marketplace,
) -> None:
    job = market.create_job()
    market.client.post(f"/v1/jobs/{job['id']}/fund", headers=market.buyer.headers)
    _settled_round(market, job, 1)
    creator_payable = f"payable:{market.creator.account_id}:USD"

    def owed() -> str:
        accounts = _get(market, "/v1/billing/balances", market.creator.headers)["accounts"]
        return next(a["posted_minor"] for a in accounts if a["account"] == creator_payable)

    assert owed() == "100"
    before = market.coordinator.log.size
    bad = market.client.post(
        f"/v1/jobs/{job['id']}/disputes", json={"round": 9, "reason": "x"},
        headers=market.buyer.headers,
    )  # fmt: skip
    assert bad.status_code == 422
    assert "no settled round 9" in bad.json()["detail"]
    opened = market.client.post(
        f"/v1/jobs/{job['id']}/disputes",
        json={"round": 1, "reason": "the labels were shuffled"},
        headers=market.buyer.headers,
    )
    assert opened.status_code == 201, opened.text
    dispute = opened.json()
    assert dispute["frozen_minor"] == "100"
    assert dispute["frozen"] == {creator_payable: "100"}
    assert owed() == "0"
    assert market.coordinator.log.size == before + 1
    _zero(market)
    # The creator sees the dispute on its job; resolving is for admins only.
    seen = _get(market, f"/v1/disputes/{dispute['id']}", market.creator.headers)
    assert seen["status"] == "open"
    body = {"outcome": "refund", "note": "confirmed by the creator"}
    denied = market.client.post(
        f"/v1/disputes/{dispute['id']}/resolve", json=body, headers=market.buyer.headers
    )
    assert denied.status_code == 403
    resolved = market.client.post(
        f"/v1/disputes/{dispute['id']}/resolve", json=body, headers=market.admin.headers
    )
    assert resolved.status_code == 200, resolved.text
    assert resolved.json()["status"] == "refunded"
    again = market.client.post(
        f"/v1/disputes/{dispute['id']}/resolve", json=body, headers=market.admin.headers
    )
    assert again.status_code == 409
    assert market.coordinator.log.size == before + 2
    buyer = _get(market, "/v1/billing/balances", market.buyer.headers)["accounts"]
    refund = next(a for a in buyer if a["kind"] == "payable")
    assert refund["posted_minor"] == "100"
    _zero(market)
