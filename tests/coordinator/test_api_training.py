"""Starting and following training through the API when things go wrong: no SuperLink to
take the run, a job that is not funded, someone else's job, bad start options, a model
asked for before there is one. Each gets a clear status and leaves the job consistent."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from coordinator_fixtures import Marketplace, build_marketplace, create_party

from clients.local_server import free_port
from coordinator.superlink import SuperLinkSettings


@pytest.fixture
def market(tmp_path: Path) -> Iterator[Marketplace]:
    built = build_marketplace(tmp_path)
    # A SuperLink address where nothing listens.
    built.coordinator.superlink = SuperLinkSettings(host="127.0.0.1", port=free_port())
    yield built
    built.client.close()
    built.coordinator.close()


def _funded(market: Marketplace) -> dict[str, Any]:
    job = market.create_job()
    response = market.client.post(f"/v1/jobs/{job['id']}/fund", headers=market.buyer.headers)
    assert response.status_code == 200, response.text
    funded: dict[str, Any] = response.json()
    return funded


def _log_size(market: Marketplace) -> int:
    return market.coordinator.log.size


def test_a_run_the_superlink_does_not_take_fails_the_job_with_the_reason(
    market: Marketplace,
) -> None:
    job = _funded(market)
    before = _log_size(market)
    response = market.client.post(
        f"/v1/jobs/{job['id']}/start", json={}, headers=market.buyer.headers
    )
    assert response.status_code == 503, response.text
    assert "the SuperLink did not take the run" in response.json()["detail"]
    run = market.client.get(f"/v1/jobs/{job['id']}/rounds", headers=market.buyer.headers).json()
    assert run["status"] == "failed"
    assert "could not be submitted" in run["status_reason"]
    assert run["rounds"] == []
    # Both transitions, running and then failed, are in the log: never a silent rollback.
    assert _log_size(market) == before + 2
    again = market.client.post(f"/v1/jobs/{job['id']}/start", headers=market.buyer.headers)
    assert again.status_code == 409


def test_only_a_funded_job_of_ones_own_starts(market: Marketplace) -> None:
    draft = market.create_job()
    before = _log_size(market)
    response = market.client.post(f"/v1/jobs/{draft['id']}/start", headers=market.buyer.headers)
    assert response.status_code == 409, response.text
    other = create_party(market.client, market.admin.api_key, "mallory", "buyer")
    job = _funded(market)
    response = market.client.post(f"/v1/jobs/{job['id']}/start", headers=other.headers)
    assert response.status_code == 404, response.text
    response = market.client.post(f"/v1/jobs/{job['id']}/start", headers=market.creator.headers)
    assert response.status_code == 403, response.text
    assert (
        market.client.get(f"/v1/jobs/{job['id']}", headers=market.buyer.headers).json()["status"]
        == "funded"
    )
    assert _log_size(market) == before + 2  # the second job's creation and funding only


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"node_wait_seconds": 0}, "node_wait_seconds"),
        ({"round_timeout_seconds": 86401}, "round_timeout_seconds"),
        ({"round_timeout_seconds": "soon"}, "round_timeout_seconds"),
        ({"strategy": "krum"}, "strategy"),
    ],
)
def test_bad_start_options_are_refused_naming_the_field(
    market: Marketplace, body: dict[str, Any], field: str
) -> None:
    job = _funded(market)
    response = market.client.post(
        f"/v1/jobs/{job['id']}/start", json=body, headers=market.buyer.headers
    )
    assert response.status_code == 422, response.text
    assert field in response.text
    status = market.client.get(f"/v1/jobs/{job['id']}", headers=market.buyer.headers).json()
    assert status["status"] == "funded"


def test_no_model_before_training_and_no_rounds_for_unknown_jobs(market: Marketplace) -> None:
    job = _funded(market)
    response = market.client.get(f"/v1/jobs/{job['id']}/model", headers=market.buyer.headers)
    assert response.status_code == 409
    assert "no trained model yet" in response.json()["detail"]
    unknown = "job_" + "0" * 26
    response = market.client.get(f"/v1/jobs/{unknown}/rounds", headers=market.buyer.headers)
    assert response.status_code == 404
    response = market.client.get("/v1/jobs/nonsense/rounds", headers=market.buyer.headers)
    assert response.status_code == 422
