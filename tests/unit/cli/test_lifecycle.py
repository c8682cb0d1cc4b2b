"""Which lifecycle rules count as the safety net against forgotten multipart uploads."""

from __future__ import annotations

from s3dsi.cli.lifecycle import judge

ABORT = {"AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 3}}


def test_a_rule_for_every_key_counts() -> None:
    for rule in ({"Status": "Enabled", "Filter": {}, **ABORT}, {"Status": "Enabled", "Prefix": "", **ABORT},
                 {"Status": "Enabled", "Filter": {"Prefix": ""}, **ABORT}, {"Status": "Enabled", **ABORT}):
        finding = judge([{"Status": "Enabled", "Expiration": {"Days": 9}}, rule])
        assert finding.state == "rule" and finding.days == 3, rule


def test_partial_disabled_and_absent_rules_do_not() -> None:
    partial = judge([{"Status": "Enabled", "Filter": {"Prefix": "tmp/"}, **ABORT},
                     {"Status": "Enabled", "Filter": {"Tag": {"Key": "a", "Value": "b"}}, **ABORT}])
    assert partial.state == "partial" and "'tmp/'" in partial.detail and "tag" in partial.detail
    assert judge([{"Status": "Disabled", **ABORT}]).state == "none"
    assert judge([{"Status": "Enabled", "Expiration": {"Days": 9}}]).state == "none"
    assert judge([]).state == "none"
