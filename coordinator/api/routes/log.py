"""The public log: C2SP tlog-tiles (checkpoint, hash tiles, entry bundles), entries with
their envelopes and proofs, and the witnesses' progress. Read-only."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path
from fastapi.responses import Response

from coordinator.api.deps import CoordinatorDep, CurrentPrincipal
from coordinator.api.schemas import LogEntryOut, WitnessStatusList
from coordinator.errors import InvalidRequest, NotFound
from provenance.dsse import Envelope
from provenance.errors import LogError
from provenance.tlog.records import LogRecord
from provenance.tlog.tiles import TILE_WIDTH, parse_tile_path

router = APIRouter(tags=["log"])
_IMMUTABLE = "public, max-age=31536000, immutable"
_TEXT = "text/plain; charset=utf-8"


@router.get("/log/checkpoint", response_class=Response, responses={200: {"content": {_TEXT: {}}}})
def get_checkpoint(coordinator: CoordinatorDep) -> Response:
    """The latest signed checkpoint, with every witness cosignature it has."""
    return Response(
        coordinator.log.checkpoint(), media_type=_TEXT, headers={"Cache-Control": "no-cache"}
    )


@router.get(
    "/log/tile/{tile_path:path}",
    response_class=Response,
    responses={200: {"content": {"application/octet-stream": {}}}},
)
def get_tile(
    tile_path: Annotated[str, Path(max_length=128)], coordinator: CoordinatorDep
) -> Response:
    """A hash tile (``<L>/<N>[.p/<W>]``) or entry bundle (``entries/<N>[.p/<W>]``)."""
    try:
        ref = parse_tile_path("tile/" + tile_path)
        if ref.level is None:
            data = coordinator.log.entry_bundle(ref.index, ref.width)
        else:
            data = coordinator.log.tile(ref.level, ref.index, ref.width)
    except LogError as exc:
        raise NotFound(f"no tile {tile_path!r}: {exc}") from exc
    cache = _IMMUTABLE if ref.width == TILE_WIDTH else "no-cache"
    return Response(data, media_type="application/octet-stream", headers={"Cache-Control": cache})


@router.get("/v1/log/entries/{index}", response_model=LogEntryOut)
def get_entry(
    index: Annotated[int, Path(ge=0, le=2**62)],
    coordinator: CoordinatorDep,
    principal: CurrentPrincipal,
) -> dict[str, Any]:
    """One log entry: its record, the envelope it names, and a C2SP tlog-proof."""
    log = coordinator.log
    if index >= log.size:
        raise NotFound(f"the log has {log.size} entries; there is no entry {index}")
    try:
        record = LogRecord.from_entry(log.entry(index))
        envelope = Envelope.from_json(log.blob(record.envelope_sha256).data)
    except LogError as exc:
        raise InvalidRequest(f"log entry {index}: {exc}") from exc
    return {
        "index": index,
        "record": {
            "type": record.record_type,
            "envelope": f"sha256:{record.envelope_sha256}",
            "subjects": list(record.subjects),
        },
        "envelope": envelope.to_dict(),
        "tlog_proof": log.tlog_proof(index).to_bytes().decode("utf-8"),
    }


@router.get("/v1/log/witnesses", response_model=WitnessStatusList)
def get_witnesses(coordinator: CoordinatorDep, principal: CurrentPrincipal) -> dict[str, Any]:
    """Each configured witness: the size it has cosigned and its last error."""
    return {"items": coordinator.pump.status() if coordinator.pump is not None else []}
