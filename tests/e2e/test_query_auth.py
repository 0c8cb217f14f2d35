"""The authorisation matrix of the query API: every role x every endpoint x own and other tenant.

A role without the endpoint's scope gets 403 and learns nothing; so does a gateway asking for a
log's entries or erasure events, which its proofs:read does not cover. A role with it, using a key of
another tenant, gets 404 for anything named by id (as if it did not exist) and only its own
tenant's rows from listings. Without a key every endpoint is 401.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import pytest

from sealtrail.infra.apikeys import KeyAdmin
from sealtrail.infra.auth import LOG_CONTENT_ROLES, ROLE_SCOPES, Role, Scope
from sealtrail.infra.auth_postgres import PostgresAuthStore
from tests.e2e.conftest import Seed
from tests.support.query import QueryStack, call


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    scope: Scope | None  # None: any valid key (public material)
    by_id: bool  # names an acme resource (log, event, session) in its path
    params: dict[str, Any] | None = None
    body: dict[str, Any] | None = None
    roles: frozenset[Role] | None = None  # beside the scope, only these roles (None: any with it)

    def allows(self, role: Role) -> bool:
        return (self.scope is None or self.scope in ROLE_SCOPES[role]) and (self.roles is None or role in self.roles)


def _endpoints(seed: Seed) -> list[Endpoint]:
    event = seed.acme[0]["event_id"]
    read, proofs, erase = Scope.CALLS_READ, Scope.PROOFS_READ, Scope.SUBJECTS_ERASE
    subject = {"subject": f"user:nobody-{uuid.uuid4().hex[:8]}@example.com"}
    return [
        Endpoint("GET", "/v1/calls", read, False, {"agent": "agent-1"}),
        Endpoint("GET", f"/v1/calls/{event}", read, True),
        Endpoint("GET", f"/v1/calls/{event}", Scope.CALLS_REVEAL, True, {"purpose": "matrix"}),
        Endpoint("GET", "/v1/sessions/s-0", read, True),
        Endpoint("GET", "/v1/logs", proofs, False),
        Endpoint("GET", "/v1/logs/acme/checkpoint", proofs, True),
        Endpoint("GET", "/v1/logs/acme/checkpoints", proofs, True),
        Endpoint("GET", "/v1/logs/acme/entries", proofs, True, {"start": 0, "end": 5}, roles=LOG_CONTENT_ROLES),
        Endpoint("GET", "/v1/logs/acme/proof/inclusion", proofs, True, {"index": 0, "size": 5}),
        Endpoint("GET", "/v1/logs/acme/proof/consistency", proofs, True, {"from": 1, "to": 5}),
        Endpoint("GET", "/v1/logs/acme/erasures", proofs, True, roles=LOG_CONTENT_ROLES),
        Endpoint("GET", f"/v1/events/{event}/tlog-proof", proofs, True),
        Endpoint("GET", "/v1/keys", None, False),
        Endpoint("POST", "/v1/subjects/export", Scope.SUBJECTS_EXPORT, False, None,
                 {"subject": "user:alice@example.com", "purpose": "matrix"}),
        Endpoint("GET", "/v1/subjects/erasures", erase, False),
        Endpoint("PUT", "/v1/subjects/hold", erase, False, None, {**subject, "reason": "matrix"}),
        Endpoint("DELETE", "/v1/subjects/hold", erase, False, None, {**subject, "reason": "matrix"}),
        Endpoint("POST", "/v1/subjects/erase", erase, False, None,
                 {**subject, "request_ref": f"M-{uuid.uuid4().hex[:8]}", "legal_basis": "gdpr.art17"}),
        Endpoint("GET", "/v1/analytics/tools", Scope.ANALYTICS_READ, False),
    ]


async def _call(stack: QueryStack, e: Endpoint, headers: dict[str, str]) -> Any:
    return await stack.api.request(e.method, e.path, params=e.params, json=e.body, headers=headers)


@pytest.mark.parametrize("role", list(Role), ids=lambda r: r.value)
async def test_role_against_every_endpoint_in_own_and_other_tenant(
        stack: QueryStack, seed: Seed, role: Role) -> None:
    """Own tenant: 2xx with the scope, 403 without. Other tenant: 403 without the scope; with it,
    404 for acme's resources by id and no acme row in any listing."""
    acme_ids = {e["event_id"] for e in seed.acme}
    for e in _endpoints(seed):
        allowed = e.allows(role)
        own = await _call(stack, e, stack.auth(f"acme:{role.value}"))
        if not allowed:
            assert own.status_code == 403, (role, e)
            assert own.headers["content-type"] == "application/problem+json"
        else:
            assert own.status_code in (200, 204), (role, e, own.text)
        other = await _call(stack, e, stack.auth(f"beta:{role.value}"))
        if not allowed:
            assert other.status_code == 403, (role, e)
        elif e.by_id:
            assert other.status_code == 404, (role, e, other.text)
        else:
            assert other.status_code in (200, 204), (role, e, other.text)
            assert not any(i in other.text for i in acme_ids) and '"acme"' not in other.text, (role, e)


async def test_no_key_or_a_bad_key_is_401_everywhere(stack: QueryStack, seed: Seed) -> None:
    """Every endpoint answers 401 without a key, with a malformed one, or with an unknown one."""
    forged = "st_0123456789abcdef_" + "A" * 43
    for e in _endpoints(seed):
        for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": f"Bearer {forged}"}):
            resp = await _call(stack, e, headers)
            assert resp.status_code == 401, (e, headers)


async def test_a_gateway_reads_only_the_proofs_of_its_own_events(stack: QueryStack, seed: Seed) -> None:
    """A second gateway of beta sends an event: the first gateway's key gets 404 for its tlog-proof,
    exactly as for a missing event, while the sender, auditors and investigators get the proof;
    the first gateway still gets the proofs of the events it sent."""
    second = await KeyAdmin(store=PostgresAuthStore(pool=stack.pool)).create_key(
        tenant="beta", role=Role.GATEWAY, label="gateway-2")
    event = call(agent_id="agent-gw2", server_id="srv-gw2", tool_name="gw2.tool", session_id="s-gw2")
    sent = await stack.gateway.post("/v1/events", json={"events": [event]},
                                    headers={"Authorization": f"Bearer {second.token}"})
    assert sent.status_code == 202, sent.text
    theirs = sent.json()["accepted"][0]["event_id"]
    await stack.logged("beta", [theirs])
    mine = seed.beta[0]["event_id"]
    missing = await stack.api.get(f"/v1/events/{uuid.uuid4()}/tlog-proof", headers=stack.auth("beta:gateway"))
    assert missing.status_code == 404
    for headers, event_id, status in (
        (stack.auth("beta:gateway"), theirs, 404), (stack.auth("beta:gateway"), mine, 200),
        ({"Authorization": f"Bearer {second.token}"}, theirs, 200),
        ({"Authorization": f"Bearer {second.token}"}, mine, 404),
        (stack.auth("beta:auditor"), theirs, 200), (stack.auth("beta:investigator"), theirs, 200),
    ):
        resp = await stack.api.get(f"/v1/events/{event_id}/tlog-proof", headers=headers)
        assert resp.status_code == status, (event_id, status, resp.text)
        if status == 404:
            assert resp.json() == missing.json()
