"""The JSON Schemas in ``schemas/`` and the pydantic models in ``sealtrail.core.events`` agree."""

from __future__ import annotations

import copy
import json
import re
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator, FormatChecker  # type: ignore[import-untyped]
from pydantic import ValidationError
from referencing import Registry, Resource

from sealtrail.core import fields
from sealtrail.core.events import EVENT_MODELS
from sealtrail.core.validation import validate_batch

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"
EXAMPLES = SCHEMAS / "examples"
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})")


def _format_checker() -> FormatChecker:
    checker = FormatChecker()

    @checker.checks("date-time", raises=ValueError)  # type: ignore[untyped-decorator]
    def _date_time(instance: object) -> bool:
        if not isinstance(instance, str):
            return True
        if not _RFC3339.fullmatch(instance):
            return False
        datetime.fromisoformat(instance)
        return True

    return checker


def _load(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def _registry() -> Registry[Any]:
    registry: Registry[Any] = Registry()
    for path in sorted(SCHEMAS.glob("*.v1.schema.json")):
        resource: Resource[Any] = Resource.from_contents(_load(path))
        registry = registry.with_resource(str(resource.id()), resource)
    return registry


REGISTRY = _registry()
CHECKER = _format_checker()
VALIDATORS = {
    kind: Draft202012Validator(_load(SCHEMAS / f"{kind}.v1.schema.json"), registry=REGISTRY,
                               format_checker=CHECKER)
    for kind in EVENT_MODELS
}


def _examples(verdict: str) -> list[tuple[str, Path]]:
    return [(kind, path) for kind in sorted(EVENT_MODELS)
            for path in sorted((EXAMPLES / kind / verdict).glob("*.json"))]


def _schema_ok(kind: str, event: object) -> bool:
    return bool(VALIDATORS[kind].is_valid(event))


def _model_ok(kind: str, event: object) -> bool:
    try:
        EVENT_MODELS[kind].model_validate(event, strict=True)
    except ValidationError:
        return False
    return True


def test_every_type_has_a_schema_and_examples() -> None:
    """Each v1 type has its schema file, an $id, and both valid and invalid examples."""
    for kind in EVENT_MODELS:
        schema = _load(SCHEMAS / f"{kind}.v1.schema.json")
        Draft202012Validator.check_schema(schema)
        assert schema["$id"] == f"https://sealtrail.dev/schemas/{kind}/v1"
        assert len(list((EXAMPLES / kind / "valid").glob("*.json"))) >= 2
        assert len(list((EXAMPLES / kind / "invalid").glob("*.json"))) >= 4


def test_schema_patterns_are_the_model_patterns() -> None:
    """The common schema's patterns are the very strings the models match."""
    defs = _load(SCHEMAS / "common.v1.schema.json")["$defs"]
    assert defs["eventId"]["pattern"] == fields.EVENT_ID_PATTERN
    assert defs["timestamp"]["pattern"] == fields.TIMESTAMP_PATTERN
    assert defs["keyId"]["pattern"] == fields.KEY_ID_PATTERN
    assert defs["subjectId"]["pattern"] == fields.SUBJECT_PATTERN
    assert defs["headerString"]["not"]["pattern"] == fields.CONTROL_PATTERN
    assert defs["headerString"]["maxLength"] == fields.MAX_HEADER_STRING


@pytest.mark.parametrize(("kind", "path"), _examples("valid"), ids=lambda v: getattr(v, "stem", v))
def test_valid_examples_pass_both(kind: str, path: Path) -> None:
    """A valid example passes the JSON Schema, the model and the whole batch validation."""
    event = _load(path)
    assert list(VALIDATORS[kind].iter_errors(event)) == []
    EVENT_MODELS[kind].model_validate(event, strict=True)
    now = datetime.fromisoformat(event["occurred_at"])
    accepted, rejected = validate_batch([event], now=now, accepted_types=frozenset(EVENT_MODELS))
    assert rejected == [] and len(accepted) == 1


@pytest.mark.parametrize(("kind", "path"), _examples("invalid"), ids=lambda v: getattr(v, "stem", v))
def test_invalid_examples_fail_both(kind: str, path: Path) -> None:
    """An invalid example fails the JSON Schema, the model and the batch validation."""
    event = _load(path)
    assert not _schema_ok(kind, event)
    assert not _model_ok(kind, event)
    now = datetime.fromisoformat(_load(next((EXAMPLES / kind / "valid").glob("*.json")))["occurred_at"])
    accepted, rejected = validate_batch([event], now=now, accepted_types=frozenset(EVENT_MODELS))
    assert accepted == [] and len(rejected) == 1


_TRICKY = [
    "", "a" * 256, "a" * 257, "a\n", "\u0085", "tab\there", "2024-02-29T00:00:00Z", "2025-02-29T00:00:00Z",
    "2025-11-04T09:15:27.1234567890Z", "2025-11-04T09:15:27Z\n", "0192f3a0-7c4e-7b21-9d3a-5e8f1c2b4a6d",
    "0192F3A0-7C4E-7B21-9D3A-5E8F1C2B4A6D", "0192f3a0-7c4e-7b21-cd3a-5e8f1c2b4a6d", "0" * 32, "0" * 16,
    "f" * 32, "f" * 16, "F" * 32, "sha256:" + "a" * 64, "sha256:" + "a" * 63, "EUR", "eur", "user:a",
    " user:a", "user:a ", "user:", ":a", "reveal", "granted", "allow", "ok", "2025-05", "2025-00",
    "incident-review", "Incident", "3f2a9c1e7b6d4a0598e1c2d3b4a5f607", "sealtrail.tool_call/v1",
]
_JSON_SCALARS = (
    st.none() | st.booleans() | st.text(max_size=12) | st.sampled_from(_TRICKY)
    | st.integers(min_value=-(2**53) + 1, max_value=2**53 - 1) | st.sampled_from([-1, 0, 1, 2**53])
    | st.integers(-1000, 1000).map(lambda i: i + 0.5)
)
_JSON = st.recursive(_JSON_SCALARS, lambda inner: st.lists(inner, max_size=3)
                     | st.dictionaries(st.text(max_size=6), inner, max_size=3), max_leaves=8)
_VALID = [(kind, _load(path)) for kind, path in _examples("valid")]


@st.composite
def _mutated(draw: st.DrawFn) -> tuple[str, Any]:
    kind, event = draw(st.sampled_from(_VALID))
    event = copy.deepcopy(event)
    for _ in range(draw(st.integers(1, 3))):
        action = draw(st.sampled_from(["drop", "replace", "add"]))
        if action == "drop" and event:
            del event[draw(st.sampled_from(sorted(event)))]
        elif action == "replace" and event:
            event[draw(st.sampled_from(sorted(event)))] = draw(_JSON)
        else:
            names = sorted({name for _, valid in _VALID for name in valid})
            event[draw(st.sampled_from(names) | st.text(max_size=8))] = draw(_JSON)
    return kind, event


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_mutated())
def test_schema_and_model_agree_on_mutations(case: tuple[str, Any]) -> None:
    """Randomly broken valid events are accepted by the schema exactly when the model accepts them.

    Integral floats and lone surrogates are left out: JSON Schema calls ``5.0`` an integer and
    has no notion of a lone surrogate; the models refuse both.
    """
    kind, event = case
    assert _schema_ok(kind, event) == _model_ok(kind, event)
