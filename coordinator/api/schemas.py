"""Request and response bodies of the HTTP API, with the limits every input is held to.

Every request model forbids unknown fields and bounds every string, number and list, so
that a body is refused (422, naming the field) before any service code sees it. Exact
decimals travel as strings. Response models document the API in OpenAPI.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

#: An exact, non-negative decimal as text: "0.05", "1e-5", "12".
DECIMAL_PATTERN = r"^(0|[1-9][0-9]{0,11})(\.[0-9]{1,18})?([eE][-+]?[0-9]{1,2})?$"
#: The largest value a decimal field takes (a budget of a trillion is far beyond any job).
MAX_DECIMAL = Decimal(10) ** 12


def _at_most_max(text: str) -> str:
    if Decimal(text) > MAX_DECIMAL:
        raise ValueError(f"must be at most {MAX_DECIMAL:E}")
    return text


DecimalText = Annotated[
    str, StringConstraints(pattern=DECIMAL_PATTERN, max_length=40), AfterValidator(_at_most_max)
]
#: A strategy option: a finite number of modest size (no NaN, no infinity).
OptionValue = Annotated[float, Field(allow_inf_nan=False, ge=-1e9, le=1e9)]
DatasetId = Annotated[str, StringConstraints(pattern=r"^ds_[0-9a-f]{26}$")]
Did = Annotated[str, StringConstraints(pattern=r"^did:key:z[1-9A-HJ-NP-Za-km-z]{40,60}$")]
Role = Literal["creator", "buyer", "auditor", "admin"]
Reason = Annotated[str, StringConstraints(max_length=500)]


class Strict(BaseModel):
    """A request body: unknown fields refused."""

    model_config = ConfigDict(extra="forbid")


class Open(BaseModel):
    """A response body."""

    model_config = ConfigDict(extra="allow")


# -- requests ---------------------------------------------------------------------------


QueryText = Annotated[str | None, StringConstraints(max_length=128, pattern=r"^[^\x00-\x1f\x7f]*$")]
Count = Annotated[int | None, Field(ge=0, le=2**62)]
Epsilon = Annotated[float | None, Field(ge=0, le=1e6, allow_inf_nan=False)]


class CatalogQuery(Strict):
    """The query string of a catalog search; every field is optional."""

    q: QueryText = Field(None, description="Words in the title.")
    modality: Literal["tabular", "image", "text"] | None = None
    license: QueryText = Field(None, description="An SPDX licence id.")
    currency: Annotated[str | None, StringConstraints(pattern=r"^[A-Z]{3}$")] = None
    use: Literal["train", "evaluate"] | None = None
    creator: QueryText = Field(None, description="The creator's did:key.")
    max_price: Annotated[str | None, StringConstraints(pattern=DECIMAL_PATTERN, max_length=40)] = (
        Field(None, description="Highest price per sample.")
    )
    min_rows: Count = None
    max_rows: Count = None
    min_bytes: Count = None
    max_bytes: Count = None
    min_lifetime_epsilon: Epsilon = None
    min_epsilon_per_job: Epsilon = None
    max_delta: Annotated[float | None, Field(ge=0, le=1, allow_inf_nan=False)] = None
    include_revoked: bool = False
    proofs: bool = Field(False, description="Give each listing a tlog-proof of its record.")
    limit: Annotated[int, Field(ge=1, le=200)] = 50
    offset: Annotated[int, Field(ge=0, le=1_000_000)] = 0


class AccountCreate(Strict):
    """A new account."""

    name: Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$")]
    role: Role


class KeyCreate(Strict):
    """A new API key for an account."""

    label: Annotated[str, StringConstraints(max_length=64)] = ""


class DsseSignature(Strict):
    """One DSSE signature."""

    keyid: Annotated[str, StringConstraints(max_length=256)] = ""
    sig: Annotated[str, StringConstraints(min_length=1, max_length=1024)]


class DsseEnvelope(Strict):
    """A DSSE envelope (payload base64)."""

    payloadType: Annotated[str, StringConstraints(min_length=1, max_length=256)]
    payload: Annotated[str, StringConstraints(min_length=1, max_length=12 * 1024 * 1024)]
    signatures: Annotated[list[DsseSignature], Field(min_length=1, max_length=16)]


class IdentityLink(Strict):
    """A creator's proof that it holds a did:key."""

    proof: DsseEnvelope


class EvidenceBody(Strict):
    """Attestation evidence as ``tally host attest`` stores it."""

    type: Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")]
    document: Annotated[str, StringConstraints(min_length=1, max_length=128 * 1024)]


class HostRegistration(Strict):
    """A host's DID and its worker's attestation evidence."""

    host_did: Did
    evidence: EvidenceBody


class ManifestSubmission(Strict):
    """A creator-signed dataset manifest."""

    envelope: DsseEnvelope


class Revocation(Strict):
    """Why a dataset is withdrawn or a job cancelled."""

    reason: Reason = ""


class DatasetTarget(Strict):
    """A dataset of a job and the privacy target on it."""

    dataset_id: DatasetId
    target_epsilon: DecimalText
    delta: DecimalText = "1e-5"


class StrategyChoice(Strict):
    """The aggregation strategy and its numeric options."""

    name: Annotated[str, StringConstraints(pattern=r"^[a-z0-9-]{1,32}$")] = "fedavg"
    options: Annotated[
        dict[Annotated[str, StringConstraints(max_length=64)], OptionValue], Field(max_length=16)
    ] = Field(default_factory=dict)


class JobSpec(Strict):
    """What a buyer wants trained."""

    datasets: Annotated[list[DatasetTarget], Field(min_length=1, max_length=64)]
    model: Annotated[str, StringConstraints(pattern=r"^[a-z0-9-]{1,64}$")]
    rounds: Annotated[int, Field(ge=1, le=1000)]
    local_epochs: Annotated[int, Field(ge=1, le=100)] = 1
    batch_size: Annotated[int, Field(ge=1, le=65536)] = 32
    learning_rate: DecimalText = "0.05"
    strategy: StrategyChoice = Field(default_factory=StrategyChoice)
    min_hosts: Annotated[int, Field(ge=1, le=64)] = 1


class Budget(Strict):
    """How much the buyer will spend at most."""

    amount: DecimalText
    currency: Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]


class JobCreate(JobSpec):
    """A job: its spec and its budget."""

    budget: Budget


class TokenRequest(Strict):
    """Which dataset of a job a token is for."""

    dataset_id: DatasetId


# -- responses --------------------------------------------------------------------------


class Problem(BaseModel):
    """An error: one line that says what is wrong, and the field at fault if one is."""

    detail: str
    field: str | None = None


class InvalidItem(BaseModel):
    """One reason a request body was refused, as FastAPI's validation reports it."""

    loc: list[str | int]
    msg: str
    type: str


class InvalidProblem(BaseModel):
    """A refused request (422): either one line naming the field at fault, or, when the
    body's shape is wrong, the list of every field at fault."""

    detail: str | list[InvalidItem]
    field: str | None = None


class AccountOut(Open):
    """An account."""

    id: str
    name: str
    role: Role
    created_at: str
    disabled_at: str | None


class AccountCreated(Open):
    """A new account and its first API key (shown once)."""

    account: AccountOut
    api_key: str
    key_id: str


class AccountList(Open):
    """A page of accounts."""

    items: list[AccountOut]


class IdentityOut(Open):
    """A did:key linked to an account."""

    did: str
    account_id: str
    linked_at: str


class Me(Open):
    """The caller's account and identities."""

    account: AccountOut
    identities: list[IdentityOut]


class KeyOut(Open):
    """API key metadata (never the secret)."""

    key_id: str
    label: str
    created_at: str
    revoked_at: str | None


class KeyCreated(KeyOut):
    """A new API key, shown once."""

    api_key: str


class KeyList(Open):
    """An account's keys."""

    items: list[KeyOut]


class HostOut(Open):
    """A host's attested worker key."""

    host_did: str
    worker_did: str
    worker_jkt: str
    evidence_type: str
    evidence_digest: str
    insecure: bool
    insecure_reason: str | None
    evidence_time: str
    verified_at: str


class PriceOut(Open):
    """A price per sample."""

    per_sample: str
    currency: str


class RoyaltyPayeeOut(Open):
    """One payee of a listing's royalty split: its account, the DID the manifest names and
    its share in basis points."""

    account_id: str
    did: str
    share_bps: int


class RoyaltiesOut(Open):
    """A listing's royalty split (shares add to 10,000 bps) and the account that takes
    rounding leftovers."""

    payees: list[RoyaltyPayeeOut]
    remainder_to: str


class PrivacyOut(Open):
    """A dataset's privacy caps."""

    lifetime_epsilon: str
    max_epsilon_per_job: str | None
    delta: str


class ListingLog(Open):
    """Where a listing's records are in the log."""

    index: int
    revocation_index: int | None


class InclusionProof(Open):
    """A C2SP tlog-proof of a listing's manifest record."""

    index: int
    tree_size: int
    tlog_proof: str


class HostAttestationOut(Open):
    """The attestation of the host that serves a listing: its evidence type and whether it
    is insecure (``dev`` evidence, accepted only in development mode)."""

    evidence_type: str
    insecure: bool


class ListingOut(Open):
    """A catalog listing."""

    dataset_id: str
    version: int
    manifest_digest: str
    title: str
    creator: str
    modality: str
    format: str
    license: str
    allowed_uses: list[str]
    price: PriceOut
    royalties: RoyaltiesOut | None = Field(
        None, description="The royalty split; null when the creator's account is paid alone."
    )
    rows: int
    total_bytes: int
    privacy: PrivacyOut
    redacted: bool
    pii_findings: int
    status: Literal["listed", "revoked"]
    listed_at: str
    revoked_at: str | None
    revoke_reason: str | None
    log: ListingLog
    development_mode: bool
    attestation: HostAttestationOut | None
    proof: InclusionProof | None = None


class ListingPage(Open):
    """A page of catalog search results."""

    items: list[ListingOut]
    total: int
    limit: int
    offset: int


class ListingDetail(Open):
    """A listing with its signed manifest and inclusion proof."""

    listing: ListingOut
    manifest: dict[str, Any]
    proof: InclusionProof


class QuoteLineOut(Open):
    """One dataset's share of a quote."""

    dataset_id: str
    planned_samples: int
    price_per_sample: str
    amount_minor: int


class QuoteOut(Open):
    """A job's price."""

    currency: str
    lines: list[QuoteLineOut]
    platform_fee_bps: int
    subtotal_minor: int
    platform_fee_minor: int
    total_minor: int
    total: str


class QuoteResponse(Open):
    """A quote."""

    quote: QuoteOut


class JobDatasetOut(Open):
    """A dataset of a job."""

    dataset_id: str
    manifest_digest: str
    target_epsilon: str
    delta: str
    planned_samples: int
    price_per_sample: str
    amount_minor: int


class JobEventOut(Open):
    """A job transition."""

    to: str
    at: str
    actor: str
    reason: str | None
    log_index: int


class JobOut(Open):
    """A job."""

    id: str
    status: str
    status_reason: str | None
    buyer: str
    model: str
    rounds: int
    local_epochs: int
    batch_size: int
    learning_rate: str
    strategy: dict[str, Any]
    min_hosts: int
    datasets: list[JobDatasetOut]
    quote: dict[str, Any]
    budget: dict[str, Any]
    spec_digest: str
    development_mode: bool
    created_at: str
    updated_at: str
    events: list[JobEventOut]


class JobPage(Open):
    """A page of jobs."""

    items: list[JobOut]
    total: int
    limit: int
    offset: int


class EarningLine(Open):
    """One job's quoted line for one of the creator's datasets."""

    job_id: str
    status: str
    bucket: Literal["committed", "completed", "lost"]
    version: int
    planned_samples: int
    price_per_sample: str
    amount_minor: int
    currency: str


class DatasetEarnings(Open):
    """A dataset and the jobs funded on it."""

    dataset_id: str
    title: str
    jobs: list[EarningLine]


class EarningTotals(Open):
    """Totals in one currency, in minor units: committed (funded or running jobs),
    completed, and lost (failed or cancelled after funding)."""

    currency: str
    committed: int
    completed: int
    lost: int


class EarningsOut(Open):
    """What a creator's datasets stand to earn, by the quotes of the jobs funded on them
    (``basis`` is "quote": payouts follow settled round proofs)."""

    account_id: str
    datasets: list[DatasetEarnings]
    totals: list[EarningTotals]
    lines: int
    truncated: bool
    basis: Literal["quote"]


class TokenOut(Open):
    """A capability token for one host, job and dataset."""

    token: str
    jti: str
    expires_at: str
    host_did: str
    worker_jkt: str
    insecure_attestation: bool


class LogEntryOut(Open):
    """One log entry with its envelope and inclusion proof."""

    index: int
    record: dict[str, Any]
    envelope: dict[str, Any]
    tlog_proof: str


class WitnessStatusList(Open):
    """How each configured witness is keeping up."""

    items: list[dict[str, Any]]


class Info(Open):
    """Public facts about the coordinator."""

    name: str
    coordinator_did: str
    coordinator_public_key_pem: str
    log_origin: str
    log_vkey: str
    audience: str
    development_mode: bool
    platform_fee_bps: int
    superlink_address: str
    witnesses: list[dict[str, Any]]


class Health(Open):
    """Liveness."""

    status: Literal["ok"]
    development_mode: bool
    superlink: str


class ModelsOut(Open):
    """The vetted models and the strategies."""

    models: list[dict[str, Any]]
    strategies: list[dict[str, Any]]


def decimal_of(text: str) -> Decimal:
    """A ``DecimalText`` as a ``Decimal`` (the pattern already held)."""
    return Decimal(text)
