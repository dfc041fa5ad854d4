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
class RuleSpec:
    """The EventBridge rule that feeds the work queue: its pattern, intrinsics left unresolved."""

    logical_id: str
    event_pattern: dict[str, Any]
    event_bus: str
    target: str  # the queue's logical id


@dataclass(frozen=True)
class StackSpec:
    """The template's shape: resources by logical id, and what the function runs with.

    Only the resources the stack creates with these parameters are listed (a resource whose
    ``Condition`` is false is not): with ``ExistingInputBucket`` there is no input bucket here.
    """

    buckets: tuple[str, ...]
    versioned_buckets: tuple[str, ...]
    # Buckets whose own notification configuration turns their EventBridge delivery on.
    eventbridge_buckets: tuple[str, ...]
    queues: dict[str, QueueSpec]
    work_queue: str
    input_rule: RuleSpec
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


class RefusedParameters(ValueError):
    """Parameters the template's Rules refuse: CloudFormation would not deploy the stack."""


def load_spec(path: Path = DEFAULT_TEMPLATE, parameters: Mapping[str, str] | None = None) -> StackSpec:
    template = cfn_yaml.load(str(path))
    values = {name: str(p.get("Default", "")) for name, p in template.get("Parameters", {}).items()}
    unknown = set(parameters or {}) - set(values)
    if unknown:
        raise ValueError(f"unknown template parameter(s): {', '.join(sorted(unknown))}")
    values.update(parameters or {})
    resolver = _Resolver(values, {}, definitions=template.get("Conditions", {}))
    conditions = {name: resolver.condition(name) for name in template.get("Conditions", {})}
    _check_rules(template.get("Rules", {}), resolver)

    # The resources these parameters create: one whose Condition is false does not exist.
    resources = {
        logical_id: resource
        for logical_id, resource in template["Resources"].items()
        if "Condition" not in resource or conditions[resource["Condition"]]
    }
    by_type: dict[str, list[str]] = {}
    for logical_id, resource in resources.items():
        by_type.setdefault(resource["Type"], []).append(logical_id)

    function = resources[FUNCTION]["Properties"]
    globals_ = template.get("Globals", {}).get("Function", {})
    (event,) = [e for e in function["Events"].values() if e["Type"] == "SQS"]
    work_queue = event["Properties"]["Queue"]["Fn::GetAtt"][0]
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

    buckets = {name: resources[name].get("Properties", {}) for name in by_type.get("AWS::S3::Bucket", [])}
    return StackSpec(
        buckets=tuple(buckets),
        versioned_buckets=tuple(
            name
            for name, props in buckets.items()
            if props.get("VersioningConfiguration", {}).get("Status") == "Enabled"
        ),
        eventbridge_buckets=tuple(
            name
            for name, props in buckets.items()
            if props.get("NotificationConfiguration", {})
            .get("EventBridgeConfiguration", {})
            .get("EventBridgeEnabled")
            is True
        ),
        queues=queues,
        work_queue=work_queue,
        input_rule=_rule_into(work_queue, resources, by_type.get("AWS::Events::Rule", [])),
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


def _check_rules(rules: Mapping[str, Any], resolver: _Resolver) -> None:
    """The template's Rules, as CloudFormation checks them before it creates anything."""
    refused = [
        assertion["AssertDescription"]
        for rule in rules.values()
        if resolver.resolve(rule.get("RuleCondition", True))
        for assertion in rule["Assertions"]
        if not resolver.resolve(assertion["Assert"])
    ]
    if refused:
        raise RefusedParameters("; ".join(refused))


def _rule_into(queue: str, resources: dict[str, Any], rules: list[str]) -> RuleSpec:
    """The rule whose target is ``queue``: how inputs reach the work queue."""
    for logical_id in rules:
        props = resources[logical_id]["Properties"]
        for target in props.get("Targets", []):
            if target["Arn"] == {"Fn::GetAtt": [queue, "Arn"]}:
                bus = props.get("EventBusName", "default")
                return RuleSpec(logical_id, props["EventPattern"], bus, queue)
    raise ValueError(f"no EventBridge rule of the template sends to {queue}")


class _Resolver:
    """Resolves Ref, Fn::GetAtt, Fn::If, Fn::Equals, Fn::Not, Fn::And, Fn::Or, Condition and
    Fn::Sub against local values."""

    def __init__(
        self,
        parameters: dict[str, str],
        names: Mapping[str, str],
        conditions: dict[str, bool] | None = None,
        *,
        definitions: Mapping[str, Any] | None = None,
    ):
        self.parameters = parameters
        self.names = names  # logical id -> what !Ref gives locally (name or URL)
        self.attributes: dict[tuple[str, str], str] = {}
        self.conditions = dict(conditions or {})
        self._definitions = definitions or {}  # the template's Conditions, evaluated when first named

    def condition(self, name: str) -> bool:
        """A condition's value; one defined by others is evaluated once they are."""
        if name not in self.conditions:
            self.conditions[name] = bool(self.resolve(self._definitions[name]))
        return self.conditions[name]

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

    def _get_att(self, argument: list[str]) -> Any:
        """A known attribute's local value; any other is kept (an ARN nothing local needs)."""
        logical_id, attribute = argument
        return self.attributes.get((logical_id, attribute), {"Fn::GetAtt": argument})

    def _if(self, argument: list[Any]) -> Any:
        condition, when_true, when_false = argument
        return self.resolve(when_true if self.condition(condition) else when_false)

    def _condition(self, name: str) -> bool:
        return self.condition(name)

    def _and(self, argument: list[Any]) -> bool:
        return all(self.resolve(item) for item in argument)

    def _or(self, argument: list[Any]) -> bool:
        return any(self.resolve(item) for item in argument)

    def _equals(self, argument: list[Any]) -> bool:
        left, right = self.resolve(argument)
        return str(left) == str(right)

    def _not(self, argument: list[Any]) -> bool:
        return not self.resolve(argument[0])

    def _sub(self, argument: Any) -> Any:
        """``${name}`` of the list form's variables, then of parameters and names; ``${X.Attr}``
        only when ``X.Attr`` is given as a name."""
        text, variables = (argument, {}) if isinstance(argument, str) else argument
        for name, replacement in {**self.parameters, **self.names, **self.resolve(variables)}.items():
            text = text.replace("${" + name + "}", str(replacement))
        return text


# The intrinsic functions resolved locally, by name; any other is kept as it is.
_INTRINSICS: dict[str, Callable[[_Resolver, Any], Any]] = {
    "Ref": _Resolver._ref,
    "Fn::GetAtt": _Resolver._get_att,
    "Fn::If": _Resolver._if,
    "Fn::Equals": _Resolver._equals,
    "Fn::Not": _Resolver._not,
    "Fn::And": _Resolver._and,
    "Fn::Or": _Resolver._or,
    "Condition": _Resolver._condition,
    "Fn::Sub": _Resolver._sub,
}


def resolve(spec: StackSpec, value: Any, names: Mapping[str, str]) -> Any:
    """A piece of the template (a pattern, a policy) with these parameters and local names."""
    return _Resolver(spec.parameters, names, spec.conditions).resolve(value)


def resolve_environment(spec: StackSpec, names: Mapping[str, str]) -> dict[str, str]:
    """The function's variables with local names in place of the resources they refer to."""
    resolved = {}
    for name, value in spec.environment.items():
        result = resolve(spec, value, names)
        resolved[name] = "" if result is None else str(result)
    return resolved
