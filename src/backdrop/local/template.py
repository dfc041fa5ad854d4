"""What the local stack takes from template.yaml, so that local and cloud never disagree.

The template is read with cfn-lint's CloudFormation-aware YAML loader (``!Ref``, ``!GetAtt``,
``!Sub``, ``!If`` become their long forms), and the few intrinsics that matter locally are
resolved against the parameters' defaults (or overrides, like ``sam deploy
--parameter-overrides``) and the local resource names.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cfnlint.decode import cfn_yaml

REPO_ROOT = Path(__file__).resolve().parents[3]
DEFAULT_TEMPLATE = REPO_ROOT / "template.yaml"
FUNCTION = "ReplaceBackgroundFunction"


@dataclass(frozen=True)
class QueueSpec:
    delay_seconds: int = 0
    visibility_timeout: int = 30
    retention_seconds: int = 345_600
    max_receive_count: int | None = None
    dead_letter_target: str | None = None  # logical id


@dataclass(frozen=True)
class StackSpec:
    """The template's shape: resources by logical id, and what the function runs with."""

    buckets: tuple[str, ...]
    versioned_buckets: tuple[str, ...]
    input_bucket: str
    output_bucket: str
    queues: dict[str, QueueSpec]
    work_queue: str
    notifications: tuple[dict[str, Any], ...]  # S3 QueueConfigurations, as CloudFormation writes them
    table: str
    table_key: str
    table_ttl_attribute: str
    secret: str
    batch_size: int
    maximum_concurrency: int
    function_timeout: int
    function_memory: int
    runtime: str
    handler: str
    code_uri: Path
    # The function's variables, intrinsics left for the stack to resolve with local names.
    environment: dict[str, Any] = field(default_factory=dict)
    parameters: dict[str, str] = field(default_factory=dict)
    conditions: dict[str, bool] = field(default_factory=dict)


def load_spec(path: Path = DEFAULT_TEMPLATE, parameters: Mapping[str, str] | None = None) -> StackSpec:
    template = cfn_yaml.load(str(path))
    values = {name: str(p.get("Default", "")) for name, p in template.get("Parameters", {}).items()}
    unknown = set(parameters or {}) - set(values)
    if unknown:
        raise ValueError(f"unknown template parameter(s): {', '.join(sorted(unknown))}")
    values.update(parameters or {})
    resolver = _Resolver(values, {})
    conditions = {name: bool(resolver.resolve(rule)) for name, rule in template.get("Conditions", {}).items()}
    resolver.conditions = conditions

    resources = template["Resources"]
    by_type: dict[str, list[str]] = {}
    for logical_id, resource in resources.items():
        if conditions.get(resource.get("Condition", ""), True):  # as CloudFormation: not made when false
            by_type.setdefault(resource["Type"], []).append(logical_id)

    function = resources[FUNCTION]["Properties"]
    globals_ = template.get("Globals", {}).get("Function", {})
    (event,) = [e for e in function["Events"].values() if e["Type"] == "SQS"]
    work_queue = event["Properties"]["Queue"]["Fn::GetAtt"][0]
    input_bucket = next(
        b
        for b in by_type["AWS::S3::Bucket"]
        if "NotificationConfiguration" in resources[b].get("Properties", {})
    )
    output_ref = function["Environment"]["Variables"]["OUTPUT_BUCKET"]["Ref"]
    (table,) = by_type["AWS::DynamoDB::Table"]
    table_props = resources[table]["Properties"]
    (secret,) = by_type["AWS::SecretsManager::Secret"]

    queues = {}
    for logical_id in by_type["AWS::SQS::Queue"]:
        props = resources[logical_id].get("Properties", {})
        redrive = props.get("RedrivePolicy") or {}
        queues[logical_id] = QueueSpec(
            delay_seconds=int(resolver.resolve(props.get("DelaySeconds", 0))),
            visibility_timeout=int(resolver.resolve(props.get("VisibilityTimeout", 30))),
            retention_seconds=int(resolver.resolve(props.get("MessageRetentionPeriod", 345_600))),
            max_receive_count=int(resolver.resolve(redrive["maxReceiveCount"])) if redrive else None,
            dead_letter_target=redrive["deadLetterTargetArn"]["Fn::GetAtt"][0] if redrive else None,
        )

    return StackSpec(
        buckets=tuple(by_type["AWS::S3::Bucket"]),
        versioned_buckets=tuple(
            bucket
            for bucket in by_type["AWS::S3::Bucket"]
            if resources[bucket].get("Properties", {}).get("VersioningConfiguration", {}).get("Status")
            == "Enabled"
        ),
        input_bucket=input_bucket,
        output_bucket=output_ref,
        queues=queues,
        work_queue=work_queue,
        notifications=tuple(
            resources[input_bucket]["Properties"]["NotificationConfiguration"]["QueueConfigurations"]
        ),
        table=table,
        table_key=table_props["KeySchema"][0]["AttributeName"],
        table_ttl_attribute=table_props["TimeToLiveSpecification"]["AttributeName"],
        secret=secret,
        batch_size=int(resolver.resolve(event["Properties"].get("BatchSize", 10))),
        maximum_concurrency=int(resolver.resolve(event["Properties"]["ScalingConfig"]["MaximumConcurrency"])),
        function_timeout=int(resolver.resolve(function.get("Timeout", globals_.get("Timeout", 3)))),
        function_memory=int(resolver.resolve(function.get("MemorySize", globals_.get("MemorySize", 128)))),
        runtime=str(function.get("Runtime", globals_.get("Runtime"))),
        handler=str(function["Handler"]),
        code_uri=path.parent / str(function["CodeUri"]),
        environment=dict(function["Environment"]["Variables"]),
        parameters=values,
        conditions=conditions,
    )


class _Resolver:
    """Resolves Ref, Fn::GetAtt, Fn::If, Fn::Equals, Fn::Not, Fn::Sub against local values."""

    def __init__(
        self, parameters: dict[str, str], names: dict[str, str], conditions: dict[str, bool] | None = None
    ):
        self.parameters = parameters
        self.names = names  # logical id -> what !Ref gives locally (name or URL)
        self.attributes: dict[tuple[str, str], str] = {}
        self.conditions = conditions or {}

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self.resolve(item) for item in value]
        if not isinstance(value, dict):
            return value
        if len(value) != 1:
            return {key: self.resolve(item) for key, item in value.items()}
        ((function, argument),) = value.items()
        intrinsic = _INTRINSICS.get(function)
        return intrinsic(self, argument) if intrinsic else self._unresolved(function, argument)

    def _unresolved(self, function: str, argument: Any) -> dict[str, Any]:
        """An intrinsic not resolved locally: kept, its argument resolved."""
        return {function: self.resolve(argument)}

    def _ref(self, name: str) -> Any:
        if name in self.parameters:
            return self.parameters[name]
        if name == "AWS::NoValue":
            return None
        return self.names.get(name, name)

    def _get_att(self, argument: list[str]) -> str:
        logical_id, attribute = argument
        return self.attributes[(logical_id, attribute)]

    def _if(self, argument: list[Any]) -> Any:
        condition, when_true, when_false = argument
        return self.resolve(when_true if self.conditions[condition] else when_false)

    def _equals(self, argument: list[Any]) -> bool:
        left, right = self.resolve(argument)
        return str(left) == str(right)

    def _not(self, argument: list[Any]) -> bool:
        return not self.resolve(argument[0])

    def _sub(self, argument: Any) -> Any:
        """The string form only (names and parameters); the list form is left as it is."""
        if not isinstance(argument, str):
            return self._unresolved("Fn::Sub", argument)
        text = argument
        for name, replacement in {**self.parameters, **self.names}.items():
            text = text.replace("${" + name + "}", str(replacement))
        return text


# The intrinsic functions resolved locally, by name; any other is kept as it is.
_INTRINSICS: dict[str, Callable[[_Resolver, Any], Any]] = {
    "Ref": _Resolver._ref,
    "Fn::GetAtt": _Resolver._get_att,
    "Fn::If": _Resolver._if,
    "Fn::Equals": _Resolver._equals,
    "Fn::Not": _Resolver._not,
    "Fn::Sub": _Resolver._sub,
}


def resolve_environment(spec: StackSpec, names: dict[str, str]) -> dict[str, str]:
    """The function's variables with local names in place of the resources they refer to."""
    resolver = _Resolver(spec.parameters, names, spec.conditions)
    resolved = {}
    for name, value in spec.environment.items():
        result = resolver.resolve(value)
        resolved[name] = "" if result is None else str(result)
    return resolved
