"""The intrinsic functions the local stack resolves, one case each, and what it leaves alone."""

from __future__ import annotations

from typing import Any

import pytest

from backdrop.local.template import _Resolver


def resolver() -> _Resolver:
    resolving = _Resolver(
        {"Stage": "dev", "Empty": ""},
        {"OutputBucket": "out", "WorkQueue": "http://work"},
        {"IsDev": True, "IsProd": False},
    )
    resolving.attributes[("WorkQueue", "Arn")] = "arn:aws:sqs:local:work"
    return resolving


CASES: list[tuple[str, Any, Any]] = [
    ("a parameter", {"Ref": "Stage"}, "dev"),
    ("a resource's local name", {"Ref": "OutputBucket"}, "out"),
    ("no value", {"Ref": "AWS::NoValue"}, None),
    ("an unknown name, kept", {"Ref": "Elsewhere"}, "Elsewhere"),
    ("an attribute", {"Fn::GetAtt": ["WorkQueue", "Arn"]}, "arn:aws:sqs:local:work"),
    ("if, true", {"Fn::If": ["IsDev", {"Ref": "Stage"}, "no"]}, "dev"),
    ("if, false", {"Fn::If": ["IsProd", "yes", {"Ref": "OutputBucket"}]}, "out"),
    ("equals, resolved first", {"Fn::Equals": [{"Ref": "Empty"}, ""]}, True),
    ("equals, as strings", {"Fn::Equals": [5, "5"]}, True),
    ("not", {"Fn::Not": [{"Fn::Equals": ["a", "b"]}]}, True),
    ("sub of a string", {"Fn::Sub": "${OutputBucket}-${Stage}-${Other}"}, "out-dev-${Other}"),
    (
        "sub of a list: its variables, then parameters and names",
        {"Fn::Sub": ["${X}/${Stage}/${Y}*", {"X": {"Ref": "OutputBucket"}, "Y": {"Ref": "Empty"}}]},
        "out/dev/*",
    ),
    ("an unknown attribute, kept", {"Fn::GetAtt": ["Rule", "Arn"]}, {"Fn::GetAtt": ["Rule", "Arn"]}),
    ("a condition", {"Condition": "IsDev"}, True),
    ("and", {"Fn::And": [{"Condition": "IsDev"}, {"Fn::Equals": ["a", "a"]}]}, True),
    ("and, one false", {"Fn::And": [{"Condition": "IsDev"}, {"Condition": "IsProd"}]}, False),
    ("or", {"Fn::Or": [{"Condition": "IsProd"}, {"Fn::Equals": ["a", "a"]}]}, True),
    ("or, none true", {"Fn::Or": [{"Condition": "IsProd"}, {"Fn::Equals": ["a", "b"]}]}, False),
    ("another intrinsic, kept", {"Fn::Join": ["-", [{"Ref": "Stage"}]]}, {"Fn::Join": ["-", ["dev"]]}),
    ("a list", [{"Ref": "Stage"}, 3], ["dev", 3]),
    ("a mapping of many keys", {"A": {"Ref": "Stage"}, "B": 1}, {"A": "dev", "B": 1}),
    ("a plain value", 42, 42),
]


@pytest.mark.parametrize(("value", "resolved"), [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_each_intrinsic_resolves_as_cloudformation_would_locally(value: Any, resolved: Any):
    assert resolver().resolve(value) == resolved


def test_a_condition_defined_by_other_conditions_is_evaluated_once_they_are():
    definitions = {
        "Uses": {"Fn::Not": [{"Condition": "Creates"}]},  # named before the one it depends on
        "Creates": {"Fn::Equals": [{"Ref": "Existing"}, ""]},
    }
    resolving = _Resolver({"Existing": "shop"}, {}, definitions=definitions)
    assert (resolving.condition("Uses"), resolving.condition("Creates")) == (True, False)
    assert resolving.resolve({"Fn::If": ["Uses", "theirs", "ours"]}) == "theirs"
