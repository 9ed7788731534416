"""The SAM template (deploy/template.yaml): cfn-lint clean, least privilege, and settings that load.

cfn-lint runs as a program (it is absent from the lowest-versions venv, which borrows .venv's).
Everything else reads the template with a YAML loader that keeps CloudFormation's short tags
and resolves it, for a few parameter sets, with a small evaluator of the intrinsic functions the
template uses: the function's environment must pass `Settings.from_env`, and the role must hold
exactly the statements listed here.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from moderation.settings import ENV_VARS, Settings

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "deploy" / "template.yaml"
DOCS = ROOT / "docs" / "deploy.md"

ACCOUNT = "123456789012"
REGION = "us-east-1"
STACK_UUID = "1c2fa620-982a-11e3-aff7-50e2416294e0"
PSEUDO = {
    "AWS::AccountId": ACCOUNT,
    "AWS::Region": REGION,
    "AWS::Partition": "aws",
    "AWS::StackName": "moderation",
    "AWS::StackId": f"arn:aws:cloudformation:{REGION}:{ACCOUNT}:stack/moderation/{STACK_UUID}",
    "AWS::URLSuffix": "amazonaws.com",
}
ADAPTER = f"arn:aws:rekognition:{REGION}:{ACCOUNT}:project/mod/version/mod.2025/1700000000000"

# What the fake stack calls its resources (see Stack.ref / Stack.getatt).
UPLOADS = f"moderation-uploads-{STACK_UUID}"
QUARANTINE = "moderation-quarantinebucket-1a2b3c4d5e6f"
TABLE = "moderation-IdempotencyTable-X1Y2Z3"
QUEUE_URL = f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/moderation-%s-AbC123"
QUEUE_ARN = f"arn:aws:sqs:{REGION}:{ACCOUNT}:moderation-%s-AbC123"
AUDIT = "moderation-auditbucket-1a2b3c4d5e6f"
TRAIL = f"s3://{AUDIT}/audit"


# -- reading the template ------------------------------------------------------------------------


class CfnLoader(yaml.SafeLoader):
    """A SafeLoader that turns `!Ref x` into {"Ref": x}, `!Sub s` into {"Fn::Sub": s}, etc."""


def _short_tag(loader: CfnLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    if suffix == "Ref":
        return {"Ref": value}
    if suffix == "Condition":
        return {"Condition": value}
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{suffix}": value}


CfnLoader.add_multi_constructor("!", _short_tag)


def load(path: Path = TEMPLATE) -> dict[str, Any]:
    return yaml.load(path.read_text(encoding="utf-8"), Loader=CfnLoader)


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load()


def function(template: dict[str, Any]) -> dict[str, Any]:
    return template["Resources"]["ModerationFunction"]["Properties"]


# -- a small evaluator: parameters, conditions and the intrinsic functions the template uses ----

NO_VALUE = object()


class Stack:
    """The template resolved for one set of parameters, in a fake account, region and stack."""

    def __init__(self, template: dict[str, Any], **parameters: str) -> None:
        self.template = template
        self.params: dict[str, Any] = {}
        declared = template["Parameters"]
        unknown = set(parameters) - set(declared)
        assert not unknown, f"no such parameters: {unknown}"
        for name, spec in declared.items():
            value = parameters.get(name, spec.get("Default"))
            assert value is not None, f"parameter {name} has no default: give it a value"
            if spec["Type"] == "CommaDelimitedList":
                self.params[name] = str(value).split(",")
            else:
                self.params[name] = str(value)  # a Ref of a Number parameter is a string

    # conditions
    def condition(self, name: str) -> bool:
        return self.truth(self.template["Conditions"][name])

    def truth(self, node: Any) -> bool:
        (key, arg), *_ = node.items()
        if key == "Condition":
            return self.condition(arg)
        if key == "Fn::Equals":
            return bool(self.resolve(arg[0]) == self.resolve(arg[1]))
        if key == "Fn::Not":
            return not self.truth(arg[0])
        if key == "Fn::And":
            return all(self.truth(a) for a in arg)
        if key == "Fn::Or":
            return any(self.truth(a) for a in arg)
        raise AssertionError(f"not a condition function: {key}")

    def exists(self, logical: str) -> bool:
        condition = self.template["Resources"][logical].get("Condition")
        return condition is None or self.condition(condition)

    def rule_failures(self) -> list[str]:
        """The AssertDescription of every Rules assertion these parameters break."""
        failed = []
        for rule in self.template.get("Rules", {}).values():
            if "RuleCondition" in rule and not self.truth(rule["RuleCondition"]):
                continue
            for assertion in rule["Assertions"]:
                if not self.truth(assertion["Assert"]):
                    failed.append(assertion["AssertDescription"])
        return failed

    # values
    def resolve(self, node: Any) -> Any:
        if isinstance(node, list):
            items = [self.resolve(item) for item in node]
            return [item for item in items if item is not NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            (key, arg), *_ = node.items()
            if key == "Ref":
                return self.ref(arg)
            if key.startswith("Fn::"):
                return self.function(key, arg)
        resolved = {key: self.resolve(value) for key, value in node.items()}
        return {key: value for key, value in resolved.items() if value is not NO_VALUE}

    def function(self, key: str, arg: Any) -> Any:
        if key == "Fn::If":
            return self.resolve(arg[1] if self.condition(arg[0]) else arg[2])
        if key == "Fn::Sub":
            text, variables = (arg, {}) if isinstance(arg, str) else arg
            values = {name: self.resolve(value) for name, value in variables.items()}
            return re.sub(r"\$\{([^}]+)\}", lambda m: self.sub_name(m.group(1), values), text)
        if key == "Fn::Join":
            return arg[0].join(self.resolve(arg[1]))
        if key == "Fn::Split":
            return self.resolve(arg[1]).split(arg[0])
        if key == "Fn::Select":
            return self.resolve(arg[1])[int(arg[0])]
        if key == "Fn::GetAtt":
            return self.getatt(*arg)
        raise AssertionError(f"the evaluator does not know {key}")

    def sub_name(self, name: str, values: dict[str, Any]) -> str:
        if name in values:
            return str(values[name])
        if "." in name:
            return str(self.getatt(*name.split(".", 1)))
        return str(self.ref(name))

    def ref(self, name: str) -> Any:
        if name == "AWS::NoValue":
            return NO_VALUE
        if name in PSEUDO:
            return PSEUDO[name]
        if name in self.params:
            return self.params[name]
        assert self.exists(name), f"Ref to {name}, which these parameters do not create"
        kind = self.template["Resources"][name]["Type"]
        if kind == "AWS::S3::Bucket":
            return self.bucket_name(name)
        if kind == "AWS::SQS::Queue":
            return QUEUE_URL % name
        if kind == "AWS::DynamoDB::Table":
            return TABLE
        return f"moderation-{name}-Q1W2E3"

    def getatt(self, name: str, attribute: str) -> str:
        assert self.exists(name), f"GetAtt of {name}, which these parameters do not create"
        assert attribute == "Arn", attribute
        kind = self.template["Resources"][name]["Type"]
        if kind == "AWS::S3::Bucket":
            return f"arn:aws:s3:::{self.bucket_name(name)}"
        if kind == "AWS::SQS::Queue":
            return QUEUE_ARN % name
        if kind == "AWS::DynamoDB::Table":
            return f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{TABLE}"
        return f"arn:aws:iam::{ACCOUNT}:role/moderation-{name}-R4T5"

    def bucket_name(self, name: str) -> str:
        given = self.template["Resources"][name]["Properties"].get("BucketName")
        if given is not None:
            return str(self.resolve(given))
        return f"moderation-{name.lower()}-1a2b3c4d5e6f"

    # what the tests look at
    def environment(self) -> dict[str, str]:
        variables = function(self.template)["Environment"]["Variables"]
        return self.resolve(variables)

    def statements(self) -> list[dict[str, Any]]:
        role = self.template["Resources"]["ModerationFunctionRole"]["Properties"]
        (policy,) = role["Policies"]
        return self.resolve(policy["PolicyDocument"]["Statement"])


# The parameter sets the tests resolve the template for.
DEFAULTS: dict[str, str] = {}
S3_ADAPTER_IN_REGION = {
    "PoliciesSource": "s3",
    "PoliciesBucket": "acme-config",
    "PoliciesPrefix": "moderation/policies",
    "Quarantine": "false",
    "JudgeInferenceProfile": "none",
    "RekognitionAdapterArn": ADAPTER,
    "Dedupe": "memory",
    "ReservedConcurrency": "20",
    "RekognitionTpsPerInstance": "2.5",
}
APPCONFIG_NO_JUDGE = {
    "AuditSink": "stdout",
    "PoliciesSource": "appconfig",
    "PoliciesAppConfig": "abc1234/def5678/ghi9012",
    "Judge": "none",
    "UploadBucketName": "acme-uploads",
    "Dedupe": "off",
    "PoliciesTtlSeconds": "300",
}
SCENARIOS = {
    "defaults": DEFAULTS,
    "s3-adapter-in-region": S3_ADAPTER_IN_REGION,
    "appconfig-no-judge": APPCONFIG_NO_JUDGE,
}


def with_defaults(template: dict[str, Any], **defaults: Any) -> dict[str, Any]:
    """A copy of the template whose parameters default to `defaults` (for cfn-lint)."""
    copy = json.loads(json.dumps(template))
    for name, value in defaults.items():
        copy["Parameters"][name]["Default"] = value
    return copy


# -- cfn-lint ------------------------------------------------------------------------------------


def cfn_lint_program() -> Path:
    """cfn-lint next to this interpreter, else the one in the repository's .venv."""
    beside = Path(sys.executable).parent / "cfn-lint"  # not resolved: a venv's python is a link
    for candidate in (beside, ROOT / ".venv" / "bin" / "cfn-lint"):
        if candidate.is_file():
            return candidate
    pytest.fail(
        f"cfn-lint not found next to {sys.executable} nor in {ROOT / '.venv' / 'bin'}: "
        "install the dev extra (`pip install -e '.[dev]'`) or run `make test`, which builds .venv"
    )


@pytest.fixture(scope="module")
def lint(template: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """cfn-lint's findings for the template, two variants and a broken copy, in one process."""
    folder = tmp_path_factory.mktemp("templates")
    variants = {
        "s3-adapter-in-region": with_defaults(template, **S3_ADAPTER_IN_REGION),
        "appconfig-no-judge": with_defaults(template, **APPCONFIG_NO_JUDGE),
    }
    broken = json.loads(json.dumps(template))
    broken["Resources"]["ModerationFunction"]["Properties"]["Timeout"] = 90000
    variants["broken"] = broken
    files = {"template": TEMPLATE}
    for name, content in variants.items():
        files[name] = folder / f"{name}.json"
        files[name].write_text(json.dumps(content, indent=1), encoding="utf-8")
    run = subprocess.run(
        [str(cfn_lint_program()), "--format", "parseable", *map(str, files.values())],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        check=False,
    )
    assert not run.stderr.strip(), run.stderr
    lines = run.stdout.splitlines()
    return {name: [ln for ln in lines if ln.startswith(f"{path}:")] for name, path in files.items()}


@pytest.mark.slow
@pytest.mark.parametrize("name", ["template", "s3-adapter-in-region", "appconfig-no-judge"])
def test_cfn_lint_finds_nothing(lint, name):
    assert lint[name] == []


def test_cfn_lint_really_runs_a_broken_copy_fails(lint):
    # A timeout far over Lambda's maximum: if cfn-lint did not run or did not read the files, the
    # clean results above would mean nothing.
    assert lint["broken"], "cfn-lint reported nothing for a template with Timeout: 90000"
    assert any(":E3034:" in line and "90000" in line for line in lint["broken"]), lint["broken"]


# -- the function and its event source -----------------------------------------------------------


def test_the_handler_runtime_and_architecture(template):
    props = function(template)
    assert props["Handler"] == "moderation.aws_lambda.handler"
    assert props["Runtime"] == "python3.13"
    assert props["Architectures"] == ["arm64"]
    assert props["Role"] == {"Fn::GetAtt": ["ModerationFunctionRole", "Arn"]}
    # pip builds the package; `sam build` would strip its compiled extensions
    assert template["Resources"]["ModerationFunction"]["Metadata"] == {"SkipBuild": True}
    assert "Policies" not in props  # no SAM policy templates: the role is written out


def test_the_sqs_event_reports_partial_batch_failures(template):
    (event,) = function(template)["Events"].values()
    assert event["Type"] == "SQS"
    props = event["Properties"]
    assert props["Queue"] == {"Fn::GetAtt": ["EventQueue", "Arn"]}
    assert props["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert props["BatchSize"] == 5
    assert props["MaximumBatchingWindowInSeconds"] == 2
    # the poller never invokes more instances than are reserved (a throttled batch costs a receive)
    assert props["ScalingConfig"] == {"MaximumConcurrency": {"Ref": "ReservedConcurrency"}}


def test_reserved_concurrency_is_a_parameter(template):
    assert function(template)["ReservedConcurrentExecutions"] == {"Ref": "ReservedConcurrency"}
    spec = template["Parameters"]["ReservedConcurrency"]
    # the SQS event source's MaximumConcurrency accepts 2..1000
    assert (spec["Type"], spec["Default"], spec["MinValue"], spec["MaxValue"]) == (
        "Number",
        5,
        2,
        1000,
    )


def test_visibility_timeout_is_at_least_six_times_the_function_timeout(template):
    timeout = function(template)["Timeout"]
    visibility = template["Resources"]["EventQueue"]["Properties"]["VisibilityTimeout"]
    assert (timeout, visibility) == (300, 1800)
    assert visibility >= 6 * timeout


def test_the_event_queue_has_a_dead_letter_queue(template):
    queue = template["Resources"]["EventQueue"]["Properties"]
    assert queue["RedrivePolicy"] == {
        "deadLetterTargetArn": {"Fn::GetAtt": ["EventDeadLetterQueue", "Arn"]},
        "maxReceiveCount": 5,
    }
    dlq = template["Resources"]["EventDeadLetterQueue"]
    assert dlq["Type"] == "AWS::SQS::Queue"
    # a message keeps its first enqueue time in the DLQ: the DLQ must keep messages longer
    assert dlq["Properties"]["MessageRetentionPeriod"] > queue["MessageRetentionPeriod"]


def test_every_environment_variable_is_one_the_library_reads(template):
    names = set(function(template)["Environment"]["Variables"])
    assert {n for n in names if not n.startswith("POWERTOOLS_")} <= set(ENV_VARS)
    assert {"POWERTOOLS_SERVICE_NAME", "POWERTOOLS_METRICS_NAMESPACE"} <= names
    assert {
        "MODERATION_POLICIES",
        "MODERATION_REVIEW_QUEUE_URL",
        "MODERATION_QUARANTINE_BUCKET",
        "MODERATION_IDEMPOTENCY_TABLE",
        "MODERATION_AUDIT",
        "MODERATION_REKOGNITION_TPS",
        "MODERATION_BEDROCK_RPM",
        "MODERATION_DEDUPE",
        "MODERATION_POLICIES_TTL",
    } <= names


EXPECTED_SETTINGS = {
    "defaults": Settings(
        policies="/var/task/policies",
        region=REGION,
        audit=TRAIL,
        judge="bedrock",
        policies_ttl=None,  # a directory in the package is read once
        rekognition_tps=1.0,
        bedrock_rpm=10.0,
        dedupe=f"dynamodb:{TABLE}",
        review_queue_url=QUEUE_URL % "ReviewQueue",
        quarantine_bucket=QUARANTINE,
        idempotency_table=TABLE,
        idempotency_ttl=86400.0,
    ),
    "s3-adapter-in-region": Settings(
        policies="s3://acme-config/moderation/policies",
        region=REGION,
        audit=TRAIL,
        project_version=ADAPTER,
        judge="bedrock",
        policies_ttl=60.0,
        rekognition_tps=2.5,
        bedrock_rpm=10.0,
        dedupe="memory",
        review_queue_url=QUEUE_URL % "ReviewQueue",
        quarantine_bucket=None,
        idempotency_table=TABLE,
        idempotency_ttl=86400.0,
    ),
    "appconfig-no-judge": Settings(
        policies="appconfig://abc1234/def5678/ghi9012",
        region=REGION,
        audit="stdout",
        judge="none",
        policies_ttl=300.0,
        rekognition_tps=1.0,
        bedrock_rpm=10.0,
        dedupe="off",
        review_queue_url=QUEUE_URL % "ReviewQueue",
        quarantine_bucket=QUARANTINE,
        idempotency_table=TABLE,
        idempotency_ttl=86400.0,
    ),
}


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_the_environment_passes_the_settings_check(template, scenario):
    env = Stack(template, **SCENARIOS[scenario]).environment()
    assert all(isinstance(v, str) for v in env.values()), env
    # Lambda sets AWS_REGION itself
    settings = Settings.from_env({**env, "AWS_REGION": REGION})
    assert settings == EXPECTED_SETTINGS[scenario]


def test_without_quarantine_the_variable_is_left_out(template):
    env = Stack(template, **S3_ADAPTER_IN_REGION).environment()
    assert "MODERATION_QUARANTINE_BUCKET" not in env
    assert "MODERATION_PROJECT_VERSION" not in Stack(template).environment()


@pytest.mark.parametrize(
    ("parameters", "problem"),
    [
        ({"PoliciesSource": "s3"}, "PoliciesSource=s3 needs PoliciesBucket"),
        ({"PoliciesSource": "appconfig"}, "PoliciesSource=appconfig needs PoliciesAppConfig"),
    ],
)
def test_rules_refuse_a_policies_source_without_its_location(template, parameters, problem):
    failures = Stack(template, **parameters).rule_failures()
    assert len(failures) == 1 and failures[0].startswith(problem)


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_rules_accept_the_scenarios(template, scenario):
    assert Stack(template, **SCENARIOS[scenario]).rule_failures() == []


# -- least privilege -----------------------------------------------------------------------------

UPLOAD_OBJECTS = f"arn:aws:s3:::{UPLOADS}/*"
HAIKU = "anthropic.claude-haiku-4-5-20251001-v1:0"
PROFILE_ARN = f"arn:aws:bedrock:{REGION}:{ACCOUNT}:inference-profile/us.{HAIKU}"
COMMON_HEAD = [
    {
        "Sid": "ReceiveUploadEvents",
        "Effect": "Allow",
        "Action": ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"],
        "Resource": QUEUE_ARN % "EventQueue",
    },
    {
        "Sid": "SendReviews",
        "Effect": "Allow",
        "Action": "sqs:SendMessage",
        "Resource": QUEUE_ARN % "ReviewQueue",
    },
]
READ_AND_TAG = [
    "s3:GetObject",
    "s3:GetObjectVersion",
    "s3:GetObjectTagging",
    "s3:GetObjectVersionTagging",
    "s3:PutObjectTagging",
    "s3:PutObjectVersionTagging",
]
TABLE_STATEMENT = {
    "Sid": "IdempotencyAndDedupe",
    "Effect": "Allow",
    "Action": [
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:DeleteItem",
    ],
    "Resource": f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{TABLE}",
}


def uploads(bucket: str) -> list[dict[str, Any]]:
    return [
        {
            "Sid": "ReadAndTagUploads",
            "Effect": "Allow",
            "Action": READ_AND_TAG,
            "Resource": f"arn:aws:s3:::{bucket}/*",
        },
        {
            "Sid": "TellMissingUploadsFromDenied",
            "Effect": "Allow",
            "Action": "s3:ListBucket",
            "Resource": f"arn:aws:s3:::{bucket}",
        },
    ]


WRITE_AUDIT = {
    "Sid": "WriteAuditRecords",
    "Effect": "Allow",
    "Action": ["s3:PutObject", "s3:GetObject"],
    "Resource": f"arn:aws:s3:::{AUDIT}/audit/*",
}
QUARANTINE_STATEMENTS = [
    {
        "Sid": "RemoveQuarantinedUploads",
        "Effect": "Allow",
        "Action": ["s3:DeleteObject", "s3:DeleteObjectVersion"],
        "Resource": UPLOAD_OBJECTS,
    },
    {
        "Sid": "WriteQuarantine",
        "Effect": "Allow",
        "Action": ["s3:PutObject", "s3:PutObjectTagging"],
        "Resource": f"arn:aws:s3:::{QUARANTINE}/*",
    },
]

EXPECTED_STATEMENTS = {
    "defaults": [
        *COMMON_HEAD,
        *uploads(UPLOADS),
        *QUARANTINE_STATEMENTS,
        WRITE_AUDIT,
        TABLE_STATEMENT,
        {
            "Sid": "DetectModerationLabels",
            "Effect": "Allow",
            "Action": "rekognition:DetectModerationLabels",
            "Resource": "*",
        },
        {
            "Sid": "InvokeJudgeProfile",
            "Effect": "Allow",
            "Action": "bedrock:InvokeModel",
            "Resource": PROFILE_ARN,
        },
        {
            "Sid": "InvokeJudgeModelThroughProfile",
            "Effect": "Allow",
            "Action": "bedrock:InvokeModel",
            "Resource": "arn:aws:bedrock:*::foundation-model/" + HAIKU,
            "Condition": {
                "StringEquals": {
                    "aws:RequestedRegion": ["us-east-1", "us-east-2", "us-west-2"],
                    "bedrock:InferenceProfileArn": PROFILE_ARN,
                }
            },
        },
    ],
    "s3-adapter-in-region": [
        *COMMON_HEAD,
        *uploads(UPLOADS),
        WRITE_AUDIT,
        TABLE_STATEMENT,
        {
            "Sid": "DetectModerationLabels",
            "Effect": "Allow",
            "Action": "rekognition:DetectModerationLabels",
            "Resource": ADAPTER,
        },
        {
            "Sid": "ListPolicies",
            "Effect": "Allow",
            "Action": "s3:ListBucket",
            "Resource": "arn:aws:s3:::acme-config",
            "Condition": {
                "StringLike": {"s3:prefix": ["moderation/policies", "moderation/policies/*"]}
            },
        },
        {
            "Sid": "ReadPolicies",
            "Effect": "Allow",
            "Action": "s3:GetObject",
            "Resource": "arn:aws:s3:::acme-config/moderation/policies/*",
        },
        {
            "Sid": "InvokeJudgeModel",
            "Effect": "Allow",
            "Action": "bedrock:InvokeModel",
            "Resource": f"arn:aws:bedrock:{REGION}::foundation-model/{HAIKU}",
        },
    ],
    "appconfig-no-judge": [
        *COMMON_HEAD,
        *uploads("acme-uploads"),
        {**QUARANTINE_STATEMENTS[0], "Resource": "arn:aws:s3:::acme-uploads/*"},
        QUARANTINE_STATEMENTS[1],
        TABLE_STATEMENT,
        {
            "Sid": "DetectModerationLabels",
            "Effect": "Allow",
            "Action": "rekognition:DetectModerationLabels",
            "Resource": "*",
        },
        {
            "Sid": "ReadPoliciesFromAppConfig",
            "Effect": "Allow",
            "Action": ["appconfig:StartConfigurationSession", "appconfig:GetLatestConfiguration"],
            "Resource": (
                f"arn:aws:appconfig:{REGION}:{ACCOUNT}:application/abc1234/environment/def5678"
                "/configuration/ghi9012"
            ),
        },
    ],
}


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_the_role_holds_exactly_these_statements(template, scenario):
    assert Stack(template, **SCENARIOS[scenario]).statements() == EXPECTED_STATEMENTS[scenario]


ALL_ACTIONS = {
    "sqs:ReceiveMessage",
    "sqs:DeleteMessage",
    "sqs:GetQueueAttributes",
    "sqs:SendMessage",
    *READ_AND_TAG,
    "s3:ListBucket",
    "s3:DeleteObject",
    "s3:DeleteObjectVersion",
    "s3:PutObject",
    "s3:GetObjectVersion",
    "dynamodb:GetItem",
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:DeleteItem",
    "rekognition:DetectModerationLabels",
    "s3:GetObject",
    "appconfig:StartConfigurationSession",
    "appconfig:GetLatestConfiguration",
    "bedrock:InvokeModel",
}


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_every_resource_is_specific(template, scenario):
    for statement in Stack(template, **SCENARIOS[scenario]).statements():
        assert statement["Effect"] == "Allow"
        assert "NotAction" not in statement and "NotResource" not in statement
        for action in as_list(statement["Action"]):
            assert action in ALL_ACTIONS and "*" not in action, action
        for resource in as_list(statement["Resource"]):
            if resource == "*":
                # DetectModerationLabels without an adapter names no resource: "*" is all IAM
                # can match; with an adapter the statement names the project version instead.
                assert statement["Sid"] == "DetectModerationLabels", statement
                assert "RekognitionAdapterArn" not in SCENARIOS[scenario]
                continue
            assert resource.startswith("arn:aws:"), resource
            if "*" not in resource:
                continue
            if resource.startswith("arn:aws:s3:::"):
                # the objects of one bucket (under one prefix): the only wildcard is the key's end
                assert resource.endswith("/*") and resource.count("*") == 1, resource
            else:
                # the judge's model in any region, bounded by the condition to the profile's
                # destination regions and to calls through that profile
                assert resource.startswith("arn:aws:bedrock:*::foundation-model/"), resource
                assert resource.count("*") == 1, resource
                condition = statement["Condition"]["StringEquals"]
                assert condition["aws:RequestedRegion"], statement
                assert condition["bedrock:InferenceProfileArn"].startswith("arn:aws:bedrock:")


def test_the_role_has_only_the_basic_execution_managed_policy(template):
    role = template["Resources"]["ModerationFunctionRole"]["Properties"]
    resolved = Stack(template).resolve(role["ManagedPolicyArns"])
    assert resolved == ["arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"]
    assert role["AssumeRolePolicyDocument"]["Statement"] == [
        {
            "Effect": "Allow",
            "Principal": {"Service": "lambda.amazonaws.com"},
            "Action": "sts:AssumeRole",
        }
    ]
    roles = [n for n, r in template["Resources"].items() if r["Type"] == "AWS::IAM::Role"]
    assert roles == ["ModerationFunctionRole", "DigestFunctionRole"]


# -- the bucket, the queue policy and the table ----------------------------------------------------


def mentions(node: Any, logical: str) -> bool:
    """Whether `node` refers to the resource `logical` (Ref, GetAtt, or inside a Sub string)."""
    if isinstance(node, list):
        return any(mentions(item, logical) for item in node)
    if isinstance(node, dict):
        if node.get("Ref") == logical:
            return True
        if "Fn::GetAtt" in node and node["Fn::GetAtt"][0] == logical:
            return True
        sub = node.get("Fn::Sub")
        text = sub if isinstance(sub, str) else sub[0] if isinstance(sub, list) else ""
        if re.search(r"\$\{" + re.escape(logical) + r"[.}]", text):
            return True
        return any(mentions(value, logical) for value in node.values())
    return False


@pytest.mark.parametrize("scenario", ["defaults", "appconfig-no-judge"])
def test_the_queue_policy_names_the_bucket_without_a_reference_to_it(template, scenario):
    stack = Stack(template, **SCENARIOS[scenario])
    policy = template["Resources"]["EventQueuePolicy"]
    # a Ref/GetAtt of the bucket here would make bucket -> queue policy -> bucket a cycle
    assert not mentions(policy, "UploadBucket")
    (statement,) = stack.resolve(policy["Properties"]["PolicyDocument"]["Statement"])
    bucket = stack.ref("UploadBucket")
    assert bucket == {"defaults": UPLOADS, "appconfig-no-judge": "acme-uploads"}[scenario]
    assert statement == {
        "Sid": "UploadBucketNotifications",
        "Effect": "Allow",
        "Principal": {"Service": "s3.amazonaws.com"},
        "Action": "sqs:SendMessage",
        "Resource": QUEUE_ARN % "EventQueue",
        "Condition": {
            "ArnEquals": {"aws:SourceArn": f"arn:aws:s3:::{bucket}"},
            "StringEquals": {"aws:SourceAccount": ACCOUNT},
        },
    }


def test_the_upload_bucket_notifies_the_event_queue_once_the_policy_exists(template):
    bucket = template["Resources"]["UploadBucket"]
    assert bucket["DependsOn"] == "EventQueuePolicy"
    assert bucket["Properties"]["NotificationConfiguration"] == {
        "QueueConfigurations": [
            {"Event": "s3:ObjectCreated:*", "Queue": {"Fn::GetAtt": ["EventQueue", "Arn"]}}
        ]
    }
    assert bucket["Properties"]["VersioningConfiguration"] == {"Status": "Enabled"}
    # the generated name is lowercase and short enough for S3 (a stack id's UUID)
    assert re.fullmatch(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", UPLOADS)
    assert Stack(template).ref("UploadBucket") == UPLOADS


def test_the_quarantine_bucket_exists_only_with_quarantine_on(template):
    assert template["Resources"]["QuarantineBucket"]["Condition"] == "UseQuarantine"
    assert Stack(template).exists("QuarantineBucket")
    assert not Stack(template, Quarantine="false").exists("QuarantineBucket")


def test_the_idempotency_table_is_what_powertools_expects(template):
    table = template["Resources"]["IdempotencyTable"]["Properties"]
    assert table == {
        "BillingMode": "PAY_PER_REQUEST",
        "AttributeDefinitions": [{"AttributeName": "id", "AttributeType": "S"}],
        "KeySchema": [{"AttributeName": "id", "KeyType": "HASH"}],
        "TimeToLiveSpecification": {"AttributeName": "expiration", "Enabled": True},
    }


def test_the_outputs(template):
    outputs = template["Outputs"]
    assert set(outputs) == {
        "FunctionArn",
        "UploadBucketName",
        "QuarantineBucketName",
        "EventQueueUrl",
        "DeadLetterQueueUrl",
        "ReviewQueueUrl",
        "IdempotencyTableName",
        "LogGroupName",
        "AuditTrail",
        "AuditKeySecretArn",
        "DigestFunctionArn",
    }
    assert outputs["FunctionArn"]["Value"] == {"Fn::GetAtt": ["ModerationFunction", "Arn"]}
    assert outputs["QuarantineBucketName"]["Condition"] == "UseQuarantine"
    stack = Stack(template)
    assert stack.resolve(outputs["ReviewQueueUrl"]["Value"]) == QUEUE_URL % "ReviewQueue"
    assert stack.resolve(outputs["DeadLetterQueueUrl"]["Value"]) == (
        QUEUE_URL % "EventDeadLetterQueue"
    )


# -- the documentation ---------------------------------------------------------------------------


def test_the_deploy_guide_explains_every_parameter(template):
    text = DOCS.read_text(encoding="utf-8")
    missing = [name for name in template["Parameters"] if f"`{name}`" not in text]
    assert missing == []
    for command in ("sam build", "sam deploy --guided", "MODERATION_POLICIES_TTL"):
        assert command in text


# -- the audit trail ---------------------------------------------------------------------------


def test_the_audit_bucket_is_locked_in_governance_mode_for_the_retention_set(template):
    bucket = template["Resources"]["AuditBucket"]
    assert (bucket["Condition"], bucket["DeletionPolicy"]) == ("AuditToS3", "Retain")
    props = Stack(template, AuditRetentionDays="90").resolve(bucket["Properties"])
    assert props["ObjectLockEnabled"] is True
    assert props["ObjectLockConfiguration"] == {
        "ObjectLockEnabled": "Enabled",
        "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": "90"}},
    }
    assert props["VersioningConfiguration"] == {"Status": "Enabled"}  # Object Lock needs it
    (rule,) = props["LifecycleConfiguration"]["Rules"]
    assert rule["ExpirationInDays"] == "90"  # pruned when the lock ends: verify --from DATE
    assert template["Parameters"]["AuditSink"]["Default"] == "s3"


def test_without_the_s3_sink_there_is_no_trail(template):
    stack = Stack(template, AuditSink="stdout")
    for name in ("AuditBucket", "AuditKeySecret", "DigestFunction", "DigestFunctionRole"):
        assert not stack.exists(name), name
    assert stack.environment()["MODERATION_AUDIT"] == "stdout"


def digest_function(template: dict[str, Any]) -> dict[str, Any]:
    return template["Resources"]["DigestFunction"]["Properties"]


def test_the_digest_function_runs_on_a_schedule_with_the_key(template):
    stack = Stack(template, DigestIntervalMinutes="5")
    props = stack.resolve(digest_function(template))
    assert props["Handler"] == "moderation.aws_lambda.digest.handler"
    assert (props["Runtime"], props["Architectures"]) == ("python3.13", ["arm64"])
    assert props["ReservedConcurrentExecutions"] == 1
    (event,) = props["Events"].values()
    assert event == {"Type": "Schedule", "Properties": {"Schedule": "rate(5 minutes)"}}
    env = props["Environment"]["Variables"]
    secret = "moderation-AuditKeySecret-Q1W2E3"
    assert env == {
        "MODERATION_AUDIT": TRAIL,
        "MODERATION_AUDIT_KEY": f"{{{{resolve:secretsmanager:{secret}:SecretString}}}}",
    }
    settings = Settings.from_env({**env, "AWS_REGION": REGION})
    assert (settings.audit, settings.audit_key) == (TRAIL, env["MODERATION_AUDIT_KEY"])
    # the writers never hold the key
    assert "MODERATION_AUDIT_KEY" not in stack.environment()


def test_the_digest_role_reads_the_trail_and_writes_only_digests(template):
    role = template["Resources"]["DigestFunctionRole"]["Properties"]
    (policy,) = role["Policies"]
    statements = Stack(template).resolve(policy["PolicyDocument"]["Statement"])
    assert statements == [
        {
            "Sid": "ListAuditTrail",
            "Effect": "Allow",
            "Action": ["s3:ListBucket", "s3:ListBucketVersions"],
            "Resource": f"arn:aws:s3:::{AUDIT}",
            "Condition": {"StringLike": {"s3:prefix": ["audit/", "audit/*"]}},
        },
        {
            "Sid": "ReadAuditTrail",
            "Effect": "Allow",
            "Action": ["s3:GetObject", "s3:GetObjectVersion"],
            "Resource": f"arn:aws:s3:::{AUDIT}/audit/*",
        },
        {
            "Sid": "WriteDigests",
            "Effect": "Allow",
            "Action": "s3:PutObject",
            "Resource": f"arn:aws:s3:::{AUDIT}/audit/_digests/*",
        },
    ]
    # nobody in the stack may delete or overwrite a trail object before its retention ends
    everything = json.dumps([statements, Stack(template).statements()])
    assert "BypassGovernanceRetention" not in everything
    assert "s3:Delete" not in json.dumps(statements)
    assert all(AUDIT not in json.dumps(s) for s in Stack(template).statements() if "Delete" in
               json.dumps(s["Action"]))  # fmt: skip
