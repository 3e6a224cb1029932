"""The plan as data (`Ref`, `Call`, `Step`, `Plan`, the errors a plan raises): well
formed by construction, rendered for review, and JSON for the journal. The plan
renders itself, which is why its rendering lives here and not above it."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, Literal

from keyhygiene.core.errors import KeyHygieneError
from keyhygiene.core.policy_documents import policy_diff

if TYPE_CHECKING:
    pass
from keyhygiene.plans.scrub import _looks_secret

StepStatus = Literal["done", "failed", "skipped", "undone"]
EventKind = Literal[
    "plan_started", "step_started", "step_done", "step_failed", "step_skipped", "plan_finished"
]

LOCAL = "local"
_REF_KEY = "$ref"


class PlanError(KeyHygieneError):
    """A plan that cannot be built, shown or applied as it stands."""


class ResumeImpossible(PlanError):
    """An interrupted run that can only be rolled back."""


class ResultNotAvailable(PlanError, KeyError):
    """A local action asked for a result this process does not hold.

    After a resume, the results of the steps done by the earlier process are
    gone (only their kept values survive). Being a KeyError too, `in` and
    `.get()` on `ApplyContext.results` behave as usual.
    """


# --------------------------------------------------------------------------- plan data


@dataclass(frozen=True)
class Ref:
    """A value produced by an earlier step, looked up when the plan is applied."""

    step: str  # id of the earlier step
    path: str  # dotted path into that step's result, e.g. "AccessKey.AccessKeyId"


@dataclass(frozen=True)
class Call:
    """One API call (`service` is a boto3 service) or one local action (`service="local"`)."""

    service: str
    operation: str  # boto3 client method name ("add_user_to_group") or local action name
    # JSON-able, may hold Refs at any depth, never a secret.
    params: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not _is_name(self.service, allow_dots=False):
            raise PlanError(f"Bad service name {self.service!r} in a plan step.")
        if not _is_name(self.operation, allow_dots=self.service == LOCAL):
            raise PlanError(f"Bad operation name {self.operation!r} for {self.service}.")
        # A private, canonical copy: the plan cannot change after review, and a
        # plan read back from a journal compares equal to the one applied.
        object.__setattr__(self, "params", _canonical(self.params, "params"))

    @property
    def label(self) -> str:
        """`iam:AddUserToGroup`, or `local:write_credentials` for a local action."""
        if self.service == LOCAL:
            return f"{LOCAL}:{self.operation}"
        return f"{self.service}:{_camel(self.operation)}"

    def refs(self) -> list[Ref]:
        return list(_iter_refs(self.params))


@dataclass(frozen=True)
class Step:
    id: str
    description: str  # one sentence for people: "Add christopher-phone to group photos"
    call: Call
    undo: Call | None = None
    before: Mapping[str, Any] | None = None  # policy document before (for the diff)
    after: Mapping[str, Any] | None = None  # policy document after
    keep: tuple[str, ...] = ()  # dotted paths of the result that may be journaled
    must_succeed: bool = True  # False: a failure is reported and the plan goes on
    # Finds out whether an earlier attempt of this step took effect, for a call
    # that AWS refuses to repeat (a create: EntityAlreadyExists) or that would
    # make a second object (CreateAccessKey). Made before the step runs again
    # after an interruption, and when its call fails after botocore retried the
    # request (the lost first attempt may have landed). It returns the step's
    # result when that attempt took effect (the step is then done without
    # running again), or an empty mapping when it did not; it may clear what
    # the attempt left that is of no use (a key whose secret was lost).
    settle: Call | None = None

    def __post_init__(self) -> None:
        if not _is_name(self.id, allow_dots=True):
            raise PlanError(f"Bad step id {self.id!r}: use letters, digits, '-', '_' and '.'.")
        if not self.description.strip():
            raise PlanError(f"Step {self.id!r} has no description.")
        object.__setattr__(self, "keep", tuple(self.keep))
        for path in self.keep:
            if any(_looks_secret(part) for part in path.split(".")):
                raise PlanError(f"Step {self.id!r} may not keep {path!r}: it looks like a secret.")
        for name in ("before", "after"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, _canonical(value, name))


@dataclass(frozen=True)
class Plan:
    kind: str  # "enroll", "rotate", ...
    title: str
    steps: tuple[Step, ...]
    warnings: tuple[str, ...] = ()
    # What the plan acts on, as the command names it ("alice-laptop photos"):
    # a rerun of the same command finds the interrupted run it finishes by it,
    # whatever the account's state made of the title.
    subject: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "steps", tuple(self.steps))
        object.__setattr__(self, "warnings", tuple(self.warnings))
        if not _is_name(self.kind, allow_dots=False):
            raise PlanError(f"Bad plan kind {self.kind!r}.")
        _check_refs(self.steps)

    def step(self, step_id: str) -> Step:
        for step in self.steps:
            if step.id == step_id:
                return step
        raise KeyError(step_id)

    def number(self, step_id: str) -> int:
        """The 1-based number people see for a step."""
        return 1 + [step.id for step in self.steps].index(step_id)

    def render_text(self, *, diffs: bool = True) -> str:
        """The plan as a person reviews it: numbered steps, exact calls, undo, diffs."""
        count = len(self.steps)
        lines = [f"Plan ({self.kind}): {self.title}", f"{count} step{'s' if count != 1 else ''}"]
        for warning in self.warnings:
            lines.append(f"Warning: {warning}")
        numbers = {step.id: index for index, step in enumerate(self.steps, 1)}
        for index, step in enumerate(self.steps, 1):
            lines.append("")
            lines.extend(_render_step(index, step, numbers, diffs=diffs))
        return "\n".join(lines)

    def step_lines(self, step_id: str, *, diffs: bool = True) -> list[str]:
        """One step rendered as in `render_text`, for widgets that lay steps out one by one."""
        numbers = {step.id: index for index, step in enumerate(self.steps, 1)}
        return _render_step(numbers[step_id], self.step(step_id), numbers, diffs=diffs)

    def to_json(self) -> dict[str, Any]:
        """A JSON-able dict (Refs become {"$ref": [step, path]}); `from_json` reads it back."""
        data: dict[str, Any] = {
            "kind": self.kind,
            "title": self.title,
            "warnings": list(self.warnings),
            "steps": [_step_to_json(step) for step in self.steps],
        }
        if self.subject:
            data["subject"] = self.subject
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Plan:
        try:
            return cls(
                kind=data["kind"],
                title=data["title"],
                warnings=tuple(data.get("warnings", ())),
                steps=tuple(_step_from_json(item) for item in data["steps"]),
                subject=str(data.get("subject", "")),
            )
        except (KeyError, TypeError, AttributeError) as exc:
            raise PlanError(f"A saved plan is damaged (missing or wrong field: {exc}).") from None


def _jsonable(value: Any) -> Any:
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(key): _jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(item) for item in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def _canonical(value: Any, where: str) -> Any:
    """A deep copy with dicts and lists only, refusing what JSON cannot hold."""
    if isinstance(value, Ref):
        return value
    if isinstance(value, Mapping):
        if _REF_KEY in value:
            raise PlanError(f"{where}: the key {_REF_KEY!r} is reserved for references.")
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise PlanError(f"{where}: keys must be strings, not {key!r}.")
            out[key] = _canonical(item, f"{where}.{key}")
        return out
    if isinstance(value, (list, tuple)):
        return [_canonical(item, f"{where}[]") for item in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    raise PlanError(f"{where}: {type(value).__name__} values cannot be part of a plan.")


def _iter_refs(value: Any) -> Iterator[Ref]:
    if isinstance(value, Ref):
        yield value
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _iter_refs(item)
    elif isinstance(value, list):
        for item in value:
            yield from _iter_refs(item)


def _check_refs(steps: Sequence[Step]) -> None:
    """Refs point back; an undo's Refs point at kept values (a rollback has nothing else)."""
    seen: dict[str, Step] = {}
    for step in steps:
        if step.id in seen:
            raise PlanError(f"Two steps have the id {step.id!r}.")
        for ref in [*step.call.refs(), *(step.settle.refs() if step.settle else [])]:
            if ref.step not in seen:
                raise PlanError(
                    f"Step {step.id!r} uses a result of {ref.step!r}, not an earlier step."
                )
        seen[step.id] = step
        for ref in step.undo.refs() if step.undo else []:
            source = seen.get(ref.step)
            if source is None:
                raise PlanError(
                    f"The undo of {step.id!r} uses a result of unknown step {ref.step!r}."
                )
            if not any(ref.path == kept or ref.path.startswith(kept + ".") for kept in source.keep):
                raise PlanError(
                    f"The undo of {step.id!r} needs {ref.path} from {ref.step!r}, "
                    "which that step does not keep."
                )


def _is_name(text: Any, *, allow_dots: bool) -> bool:
    if not isinstance(text, str) or not text or not (text[0].isascii() and text[0].isalpha()):
        return False
    extra = "_-." if allow_dots else "_-"
    return all((char.isascii() and char.isalnum()) or char in extra for char in text)


def _camel(snake: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in snake.split("_"))


# --------------------------------------------------------------------------- rendering


def _render_step(index: int, step: Step, numbers: Mapping[str, int], *, diffs: bool) -> list[str]:
    pad = " " * (len(str(index)) + 2)
    document = step.after if diffs else None
    lines = [f"{index}. {step.description}"]
    lines.append(f"{pad}do:   {_render_call(step.call, numbers, document)}")
    if step.undo is not None:
        lines.append(f"{pad}undo: {_render_call(step.undo, numbers, None)}")
    else:
        lines.append(f"{pad}undo: none, this step cannot be undone automatically")
    if step.keep:
        lines.append(f"{pad}journal keeps: {', '.join(step.keep)}")
    if not step.must_succeed:
        lines.append(f"{pad}if it fails, the plan goes on")
    if diffs and (step.before is not None or step.after is not None):
        lines.extend(pad + line for line in _policy_diff(step.before, step.after))
    return lines


def _render_call(call: Call, numbers: Mapping[str, int], document: Mapping[str, Any] | None) -> str:
    if not call.params:
        return call.label
    return f"{call.label} {_render_value(call.params, numbers, document)}"


def _render_value(
    value: Any, numbers: Mapping[str, int], document: Mapping[str, Any] | None
) -> str:
    if isinstance(value, Ref):
        return f"<{value.path} from step {numbers.get(value.step, '?')}>"
    if isinstance(value, Mapping):
        items = (
            f"{json.dumps(key)}: {_render_value(item, numbers, document)}"
            for key, item in value.items()
        )
        return "{" + ", ".join(items) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_render_value(item, numbers, document) for item in value) + "]"
    if document is not None and isinstance(value, str) and _same_document(value, document):
        # The diff below shows this document readably; the JSON string would not.
        return "<the policy shown after the change below>"
    return json.dumps(value)


def _same_document(text: str, document: Mapping[str, Any]) -> bool:
    try:
        return json.loads(text) == document
    except ValueError:
        return False


def _policy_diff(before: Mapping[str, Any] | None, after: Mapping[str, Any] | None) -> list[str]:
    lines = policy_diff(
        before,
        after,
        before_label="policy before" if before is not None else "(no policy)",
        after_label="policy after" if after is not None else "(no policy)",
    )
    return lines or ["(policy unchanged)"]


# --------------------------------------------------------------------------- JSON form


def _to_json_value(value: Any) -> Any:
    if isinstance(value, Ref):
        return {_REF_KEY: [value.step, value.path]}
    if isinstance(value, Mapping):
        return {key: _to_json_value(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_to_json_value(item) for item in value]
    return value


def _from_json_value(value: Any) -> Any:
    if isinstance(value, Mapping):
        if set(value) == {_REF_KEY}:
            step, path = value[_REF_KEY]
            return Ref(step, path)
        return {key: _from_json_value(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_from_json_value(item) for item in value]
    return value


def _call_to_json(call: Call | None) -> dict[str, Any] | None:
    if call is None:
        return None
    return {
        "service": call.service,
        "operation": call.operation,
        "params": _to_json_value(call.params),
    }


def _call_from_json(data: Mapping[str, Any] | None) -> Call | None:
    if data is None:
        return None
    return Call(data["service"], data["operation"], _from_json_value(data.get("params", {})))


def _step_to_json(step: Step) -> dict[str, Any]:
    return {
        "id": step.id,
        "description": step.description,
        "call": _call_to_json(step.call),
        "undo": _call_to_json(step.undo),
        "before": step.before,
        "after": step.after,
        "keep": list(step.keep),
        "must_succeed": step.must_succeed,
        # Only when set: journals written before it existed read back equal.
        **({"settle": _call_to_json(step.settle)} if step.settle is not None else {}),
    }


def _step_from_json(data: Mapping[str, Any]) -> Step:
    call = _call_from_json(data["call"])
    if call is None:
        raise PlanError(f"A saved plan step ({data.get('id')!r}) has no call.")
    return Step(
        id=data["id"],
        description=data["description"],
        call=call,
        undo=_call_from_json(data.get("undo")),
        before=data.get("before"),
        after=data.get("after"),
        keep=tuple(data.get("keep", ())),
        must_succeed=bool(data.get("must_succeed", True)),
        settle=_call_from_json(data.get("settle")),
    )
