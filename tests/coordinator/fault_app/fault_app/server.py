"""The coordinator's ServerApp, sending some datasets bad capability tokens.

Faults (by dataset id, from ``faults.json`` in the coordinator home):

- ``forged-token``: the real token's header and claims, signed by a key of our own;
- ``expired-token``: the real claims, signed by the coordinator, expired an hour ago;
- ``replayed-token``: the dataset's round-1 token again in every later round;
- ``out-of-scope-token``: a real token for this dataset, issued for ``evaluate``.
"""

from __future__ import annotations

import base64
import json
from datetime import timedelta
from typing import Any

from flwr.app import Context, Message
from flwr.serverapp import Grid, ServerApp

from coordinator.server_app import run_job
from coordinator.service import Coordinator
from coordinator.training import Assignment, JobTrainer, RunSettings
from provenance.capability import (
    CapabilityClaims,
    CapabilityScope,
    issue_capability,
    new_jti,
)
from provenance.keys import SigningKey

from . import load_faults

app = ServerApp()


def _claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    decoded: dict[str, Any] = json.loads(
        base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    )
    return decoded


def _encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def forged(token: str) -> str:
    """``token`` re-signed by a key that is not the coordinator's."""
    header, payload, _signature = token.split(".")
    signature = SigningKey.generate().sign(f"{header}.{payload}".encode("ascii"))
    return f"{header}.{payload}.{_encode(signature)}"


def expired(token: str, key: SigningKey, now: Any) -> str:
    """``token``'s claims under a new id, signed by ``key``, expired an hour before ``now``."""
    claims = _claims(token)
    return issue_capability(
        key,
        CapabilityClaims(
            issuer=claims["iss"],
            subject=claims["sub"],
            audience=claims["aud"],
            issued_at=now - timedelta(hours=2),
            expires_at=now - timedelta(hours=1),
            jti=new_jti(),
            scope=CapabilityScope.from_dict(claims["scope"]),
            worker_jkt=claims["cnf"]["jkt"],
            insecure_attestation=claims["tallystick_insecure_attestation"],
        ),
    )


class FaultyTrainer(JobTrainer):
    """The real training loop; only the tokens of the datasets in ``faults.json`` change."""

    def __init__(
        self, coordinator: Coordinator, grid: Grid, job_id: str, settings: RunSettings
    ) -> None:
        super().__init__(coordinator, grid, job_id, settings)
        self.faults = load_faults(coordinator.home.root)
        self.first_tokens: dict[str, str] = {}

    def before_send(self, message: Message, item: Assignment, round_number: int) -> Message:
        fault = self.faults.get(item.dataset_id)
        config = message.content.config_records["config"]
        token = str(config["token"])
        if fault == "forged-token":
            config["token"] = forged(token)
        elif fault == "expired-token":
            config["token"] = expired(token, self.coordinator.signing_key, self.coordinator.now())
        elif fault == "replayed-token":
            config["token"] = self.first_tokens.setdefault(item.dataset_id, token)
        elif fault == "out-of-scope-token":
            tokens, refused = self._tokens("evaluate", [item])
            assert not refused, refused
            config["token"] = tokens[item.dataset_id][0]
        elif fault is not None:
            raise ValueError(f"unknown server fault {fault!r} for {item.dataset_id}")
        return message


@app.main()
def main(grid: Grid, context: Context) -> None:
    """Train the job as the shipped ServerApp does, with the faulty token sender."""
    run_job(grid, context, FaultyTrainer)
