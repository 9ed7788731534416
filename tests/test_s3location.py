"""The one S3 location type, `s3://` parser and bucket-name rule (`moderation.s3location`)."""

from __future__ import annotations

import pytest

from moderation import InvalidS3Location, S3Location, S3Prefix
from moderation.s3location import bucket_problem, check_bucket

# The S3 User Guide's "General purpose bucket naming rules": its examples of valid names, and a
# name breaking each rule.
VALID = [
    "docexamplebucket1",
    "log-delivery-march-2020",
    "my-hosted-content",
    "docexamplewebsite.com",
    "www.docexamplewebsite.com",
    "my.example.s3.bucket",
    "abc",
    "a" * 63,
    "1bucket2",
    "192.168.5.4x",  # not an IP address
    "xn-bucket",  # only `xn--` is reserved
    "bucket-s3alias-not",
]
INVALID = {
    "doc_example_bucket": "'_'",  # underscores
    "DocExampleBucket": "'B', 'D', 'E'",  # uppercase letters
    "doc-example-bucket-": "begin and end",  # ends with a hyphen
    "-bucket": "begin and end",
    ".bucket": "begin and end",
    "bucket.": "begin and end",
    "ab": "2 characters",
    "a" * 64: "64 characters",
    "": "0 characters",
    "my..bucket": "two adjacent dots",
    "192.168.5.4": "IP address",
    "xn--bucket": "'xn--'",
    "sthree-bucket": "'sthree-'",
    "sthree-configurator-x": "'sthree-'",
    "amzn-s3-demo-bucket": "'amzn-s3-demo-'",
    "bucket-s3alias": "'-s3alias'",
    "bucket--ol-s3": "'--ol-s3'",
    "bucket.mrap": "'.mrap'",
    "bucket--x-s3": "'--x-s3'",
    "bucket--table-s3": "'--table-s3'",
    "{{{bucket}}}": "'{', '}'",  # an unrendered SAM template
    "Not_A_Bucket!": "'!', 'A', 'B', 'N', '_'",
    "my bucket": "' '",
}


@pytest.mark.parametrize("name", VALID)
def test_valid_bucket_names(name: str) -> None:
    assert bucket_problem(name) is None
    assert check_bucket(name) == name


@pytest.mark.parametrize(("name", "why"), INVALID.items(), ids=lambda v: str(v)[:24])
def test_invalid_bucket_names_say_what_is_wrong(name: str, why: str) -> None:
    problem = bucket_problem(name)
    assert problem is not None and why in problem and repr(name) in problem
    with pytest.raises(InvalidS3Location, match="bucket name"):
        check_bucket(name)
    with pytest.raises(InvalidS3Location):
        S3Location(name, "k.png")
    with pytest.raises(InvalidS3Location):
        S3Location.parse(f"s3://{name}/k.png")


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("s3://uploads/a.png", S3Location("uploads", "a.png")),
        ("s3://uploads/dir/a b+c%20d.png", S3Location("uploads", "dir/a b+c%20d.png")),
        ("s3://uploads/a.png?versionId=v1", S3Location("uploads", "a.png", "v1")),
        ("s3://uploads/a.png?versionId=a%2Bb", S3Location("uploads", "a.png", "a+b")),
        ("s3://uploads/a.png?versionId=null", S3Location("uploads", "a.png", "null")),
        # Only the last `?versionId=` names a version; the rest belongs to the key.
        (
            "s3://uploads/cat.png?versionId=null?versionId=v2",
            S3Location("uploads", "cat.png?versionId=null", "v2"),
        ),
        ("s3://uploads/a.png?foo=bar", S3Location("uploads", "a.png?foo=bar")),
        ("s3://uploads//lead", S3Location("uploads", "/lead")),
    ],
)
def test_parse_an_object(uri: str, expected: S3Location) -> None:
    assert S3Location.parse(uri) == expected


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("uploads/a.png", "not an S3 location"),
        ("S3://uploads/a.png", "not an S3 location"),
        ("s3://", "names no bucket"),
        ("s3:///a.png", "names no bucket"),
        ("s3://uploads", "names no object key"),
        ("s3://uploads/", "names no object key"),
        ("s3://uploads/a.png?versionId=", "names no version"),
        ("s3://Uploads/a.png", "lowercase"),
        ("s3://uploads/" + "k" * 1025, "1025 bytes"),
    ],
)
def test_parse_refuses_what_names_no_object(uri: str, message: str) -> None:
    with pytest.raises(InvalidS3Location, match=message):
        S3Location.parse(uri)


def test_the_uri_is_for_people_and_the_params_address_the_object() -> None:
    plain = S3Location("uploads", "a b.png")
    pinned = S3Location("uploads", "cat.png?versionId=null", "v2")
    assert plain.uri == str(plain) == "s3://uploads/a b.png"
    assert plain.params() == {"Bucket": "uploads", "Key": "a b.png"}
    assert pinned.params() == {
        "Bucket": "uploads", "Key": "cat.png?versionId=null", "VersionId": "v2"
    }  # fmt: skip
    assert S3Location.parse(pinned.uri) == pinned


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"key": ""}, "key is empty"),
        ({"key": "\udcff"}, "not valid Unicode"),
        ({"version_id": ""}, "version id"),
        ({"key": 3}, "not int"),
    ],
)
def test_a_location_is_valid_when_built(bad: dict[str, object], message: str) -> None:
    fields: dict[str, object] = {"bucket": "uploads", "key": "a.png", "version_id": None} | bad
    with pytest.raises(InvalidS3Location, match=message):
        S3Location(**fields)  # type: ignore[arg-type]


def test_a_location_is_frozen_and_hashable() -> None:
    location = S3Location("uploads", "a.png")
    with pytest.raises(AttributeError):
        location.key = "b.png"  # type: ignore[misc]
    assert {location: 1}[S3Location("uploads", "a.png")] == 1


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("s3://policies", S3Prefix("policies", "")),
        ("s3://policies/", S3Prefix("policies", "")),
        ("s3://policies/prod/tenants", S3Prefix("policies", "prod/tenants")),
        ("s3://policies/prod/", S3Prefix("policies", "prod/")),
    ],
)
def test_parse_a_prefix(uri: str, expected: S3Prefix) -> None:
    assert S3Prefix.parse(uri) == expected


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("s3://Not_A_Bucket!/x", "lowercase"),
        ("s3://policies/p?versionId=3", "names no version"),
        ("/tmp/policies", "not an S3 location"),
    ],
)
def test_parse_a_prefix_refuses(uri: str, message: str) -> None:
    with pytest.raises(InvalidS3Location, match=message):
        S3Prefix.parse(uri)


# -- every place that names a bucket uses the one rule --------------------------------------------

ONE_RULE = ["Not_A_Bucket", "xn--bucket", "bucket-s3alias", "192.168.5.4", "my..bucket", "ab"]


@pytest.mark.parametrize("name", ONE_RULE)
def test_settings_intake_cli_audit_and_policies_refuse_the_same_names(name: str) -> None:
    from moderation import ConfigurationError, ImageIntake, InvalidImage, PolicyError, Settings
    from moderation.audit import audit_log_from_spec
    from moderation.cli._inputs import UsageProblems, parse_args
    from moderation.policy import PolicyStore

    with pytest.raises(ConfigurationError, match="MODERATION_QUARANTINE_BUCKET"):
        Settings.from_env({"MODERATION_QUARANTINE_BUCKET": name})
    with pytest.raises(ConfigurationError, match="MODERATION_POLICIES"):
        Settings.from_env({"MODERATION_POLICIES": f"s3://{name}/prod"})
    with pytest.raises(InvalidImage, match="malformed s3 uri"):
        ImageIntake(s3=object()).prepare(f"s3://{name}/a.png")  # type: ignore[arg-type]
    with pytest.raises(UsageProblems, match="not an S3 location"):
        parse_args([f"s3://{name}/a.png"])
    with pytest.raises(ConfigurationError, match="audit destination"):
        audit_log_from_spec(f"s3://{name}/decisions")
    with pytest.raises(PolicyError):
        PolicyStore.load(f"s3://{name}/prod")
