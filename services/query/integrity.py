"""What a person is shown of a call is bound to its signed entry (DESIGN §8.7). Pure code.

The ledger keeps searchable copies of header fields in columns of ``entries`` (and the leaf hash
beside the entry bytes), and the projector keeps read models (sessions, the subject index,
rollups, tool definitions). All of it is derived data that someone with write access to the
database could change without touching the entry bytes, which are what the log signs. So every
investigation answer is built from the entry bytes and checks each copy it relied on against
them:

- the stored leaf MUST be SHA-256(0x00 || entry bytes): otherwise the bytes shown are not the
  bytes in the tree, and the row is withheld;
- every column copy read with the row (event id, tenant, type, time, agent, session, server,
  tool, tier, decision, status) MUST equal the header's value;
- the row MUST satisfy, by its signed header, every filter the query asked for (a row found only
  because a column copy was changed is not an answer);
- a subject-index row MUST name a key id that the entry's header lists.

A disagreement is reported as a :class:`Disagreement` (log, index, the field names that differ;
never their values). Rows whose signed header does not answer the query, or whose bytes do not
hash to their leaf, are withheld; other rows are shown flagged. The checks cost one SHA-256 and a
few comparisons per row.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sealtrail.core.signedview import as_time, disagreements
from services.query.ports import FILTER_COLUMNS, CallFilter, Found

# Fields whose disagreement withholds a row: the bytes themselves, and what places the row in the
# caller's tenant and answer.
WITHHOLDING = frozenset({"leaf", "tenant_id", "event_id"})


@dataclass(frozen=True, slots=True)
class Disagreement:
    """One entry whose stored copies disagree with its signed bytes."""

    log_id: str
    idx: int
    fields: tuple[str, ...]
    withheld: bool

    def as_json(self) -> dict[str, Any]:
        return {"log": self.log_id, "index": self.idx, "fields": list(self.fields), "withheld": self.withheld}


def column_disagreements(found: Found) -> list[str]:
    """The stored copies of ``found`` that disagree with its entry bytes (``leaf`` first)."""
    columns = {**found.columns, "occurred_at": found.occurred_at}
    return disagreements(found.entry, found.leaf, found.header, columns)


def filter_disagreements(found: Found, f: CallFilter) -> list[str]:
    """The filters of ``f`` that the signed header of ``found`` does not satisfy."""
    header = found.header
    bad = [FILTER_COLUMNS[name] for name, value in f.equals.items() if header.get(FILTER_COLUMNS[name]) != value]
    if f.occurred_from is not None or f.occurred_to is not None:
        t = as_time(header.get("occurred_at"))
        if (t is None or (f.occurred_from is not None and t < f.occurred_from)
                or (f.occurred_to is not None and t >= f.occurred_to)):
            bad.append("occurred_at")
    return bad


def check(found: Found, *, tenant: str, f: CallFilter | None = None, key_id: str | None = None
          ) -> Disagreement | None:
    """Everything this row relied on, checked against its signed entry (None: all agree).

    ``key_id``: the key id of the subject-index row that found it (it MUST be among the header's
    ``key_ids``). A row is withheld when its bytes do not hash to its leaf, when it belongs to
    another tenant or carries another event id than the column that found it, or when its signed
    header does not answer ``f``.
    """
    bad = column_disagreements(found)
    key_id = key_id if key_id is not None else found.subject_key_id
    if found.header.get("tenant") != tenant and "tenant_id" not in bad:
        bad.append("tenant_id")
    answers = True
    if f is not None:
        missed = filter_disagreements(found, f)
        answers = not missed
        bad += [m for m in missed if m not in bad]
    if key_id is not None and key_id not in (found.header.get("key_ids") or ()):
        bad.append("subject_index")
        answers = False
    if not bad:
        return None
    return Disagreement(found.log_id, found.idx, tuple(bad), withheld=not answers or bool(WITHHOLDING & set(bad)))


def split(rows: Iterable[Found], *, tenant: str, f: CallFilter | None = None,
          key_ids: Sequence[str | None] | None = None) -> tuple[list[Found], list[Disagreement]]:
    """The rows that may be shown (flagged ones included) and every disagreement found."""
    shown: list[Found] = []
    found: list[Disagreement] = []
    for i, row in enumerate(rows):
        d = check(row, tenant=tenant, f=f, key_id=None if key_ids is None else key_ids[i])
        if d is not None:
            found.append(d)
        if d is None or not d.withheld:
            shown.append(row)
    return shown, found


def flagged(rows: Sequence[Found], disagreements: Sequence[Disagreement]) -> list[dict[str, Any]]:
    """``rows`` as JSON, each shown row that disagrees carrying ``"inconsistent": [fields]``."""
    by_row = {(d.log_id, d.idx): d for d in disagreements}
    out = []
    for row in rows:
        body = row.as_json()
        d = by_row.get((row.log_id, row.idx))
        if d is not None:
            body["inconsistent"] = list(d.fields)
        out.append(body)
    return out


ERROR_STATUSES = frozenset({"error", "timeout"})


def session_summary(rows: Sequence[Found]) -> dict[str, Any]:
    """A session's summary computed from its signed entries (the projector's definition)."""
    agents = [a for r in rows if isinstance(a := r.header.get("agent_id"), str) and a]
    calls = [r.header for r in rows if r.header.get("type") == "tool_call"]
    times = [r.occurred_at for r in rows]
    return {"agent_id": min(agents) if agents else None,
            "first_at": min(times).isoformat() if times else None, "last_at": max(times).isoformat() if times else None,
            "events": len(rows), "calls": len(calls),
            "errors": sum(h.get("status") in ERROR_STATUSES for h in calls),
            "denials": sum(h.get("decision") == "deny" for h in calls)}


def summary_disagreements(stored: Mapping[str, Any], rows: Sequence[Found]) -> list[str]:
    """The fields of the projector's session row that the session's signed entries contradict."""
    signed = session_summary(rows)
    bad = []
    for name, value in signed.items():
        have = stored.get(name)
        same = as_time(have) == as_time(value) if name in ("first_at", "last_at") else have == value
        if not same:
            bad.append(name)
    return bad


ERASURE_FIELDS = ("request_ref", "legal_basis", "erased_key_ids", "payloads_deleted", "index_rows_deleted")


def check_erasure(found: Found, record: Mapping[str, Any], *, tenant: str) -> Disagreement | None:
    """An erasure record (the DPO's history) checked against its ``erasure`` event in the log."""
    d = check(found, tenant=tenant)
    bad = list(d.fields) if d is not None else []
    header = found.header
    if header.get("type") != "erasure":
        bad.append("type")
    bad += [f"erasure.{name}" for name in ERASURE_FIELDS if header.get(name) != record.get(name)]
    if not bad:
        return None
    return Disagreement(found.log_id, found.idx, tuple(dict.fromkeys(bad)), withheld=False)
