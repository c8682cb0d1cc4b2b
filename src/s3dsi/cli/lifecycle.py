"""Whether a bucket has the last safety net against forgotten multipart uploads: a lifecycle rule with
``AbortIncompleteMultipartUpload`` that applies to every key. ``s3dsi probe`` and ``s3dsi check-config
--bucket`` report it; docs/admin.md recommends one in every bucket the daemon writes to.

The daemon's own janitor aborts every upload it created (it keeps a record of each in S3), but an
upload whose record could not be written, a bucket nobody sweeps, or another tool's upload is caught
only by the rule. Reading the rule needs ``s3:GetLifecycleConfiguration``, which the connector does not
otherwise need: when it is refused the answer is "unknown", never a failure.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from botocore.exceptions import BotoCoreError, ClientError

State = Literal["rule", "partial", "none", "unknown"]


@dataclass(frozen=True)
class LifecycleFinding:
    state: State
    days: int | None = None  # DaysAfterInitiation of the rule that covers every key
    detail: str = ""

    def describe(self, bucket: str) -> str:
        if self.state == "rule":
            return (f"bucket {bucket}: lifecycle rule aborts incomplete multipart uploads after {self.days} "
                    "day(s)")
        if self.state == "partial":
            return (f"bucket {bucket}: AbortIncompleteMultipartUpload applies only to {self.detail}; add a "
                    "rule for every key (docs/admin.md, 'Running several hosts')")
        if self.state == "none":
            return (f"bucket {bucket}: no lifecycle rule aborts incomplete multipart uploads; add one "
                    "(AbortIncompleteMultipartUpload, e.g. 7 days) as the last safety net (docs/admin.md)")
        return f"bucket {bucket}: lifecycle rules not readable ({self.detail})"


def _whole_bucket(rule: dict[str, Any]) -> str | None:
    """None when the rule's filter covers every key, else a description of what it covers."""
    if rule.get("Prefix"):
        return f"keys under {rule['Prefix']!r}"
    rule_filter = rule.get("Filter")
    if not rule_filter:
        return None
    if set(rule_filter) - {"Prefix"}:
        return "keys matching a tag or size filter"
    prefix = rule_filter.get("Prefix", "")
    return f"keys under {prefix!r}" if prefix else None


def judge(rules: list[dict[str, Any]]) -> LifecycleFinding:
    """The finding for a bucket's lifecycle rules (GetBucketLifecycleConfiguration's ``Rules``)."""
    partial = []
    for rule in rules:
        abort = rule.get("AbortIncompleteMultipartUpload")
        if rule.get("Status") != "Enabled" or not abort or "DaysAfterInitiation" not in abort:
            continue
        covers = _whole_bucket(rule)
        if covers is None:
            return LifecycleFinding("rule", int(abort["DaysAfterInitiation"]))
        partial.append(covers)
    if partial:
        return LifecycleFinding("partial", detail=", ".join(partial))
    return LifecycleFinding("none")


def check_lifecycle(client: Any, bucket: str) -> LifecycleFinding:
    """Ask S3 (``client``: a botocore S3 client of the bucket's region)."""
    try:
        response = client.get_bucket_lifecycle_configuration(Bucket=bucket)
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code == "NoSuchLifecycleConfiguration":
            return LifecycleFinding("none")
        if code in ("AccessDenied", "403"):
            return LifecycleFinding("unknown", detail="s3:GetLifecycleConfiguration is not allowed to these "
                                                      "credentials")
        return LifecycleFinding("unknown", detail=code or "error")
    except BotoCoreError as exc:
        return LifecycleFinding("unknown", detail=type(exc).__name__)
    return judge(list(response.get("Rules", [])))
