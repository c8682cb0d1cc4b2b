"""The namespace layer is the one place of the directory rules: the stores below it only speak S3."""

from __future__ import annotations

from pathlib import Path

import pytest

from s3dsi.storage import memory, namespace, s3

STORAGE = Path(namespace.__file__).parent

# The user-visible texts of the directory rules (gfal2 reads errno from them).
RULE_TEXTS = ["No such file or directory\"", "Is a directory", "Not a directory", "Directory not empty",
              "parent directory does not exist", "directory rename is not supported", "File exists",
              "a file of that name exists", "the bucket list cannot be removed"]


@pytest.mark.parametrize("text", RULE_TEXTS)
def test_each_rule_text_is_written_once_in_the_namespace_layer(text: str) -> None:
    holders = sorted(p.name for p in STORAGE.glob("*.py") if text in p.read_text())
    assert holders == ["namespace.py"]


def test_the_stores_know_no_directories() -> None:
    for module in (memory, s3):
        source = Path(module.__file__ or "").read_text()
        for name in ("dir_prefix", "marker_key", "parent_prefix", "_keep_parent", "_require_parent"):
            assert name not in source, f"{module.__name__} uses {name}: directory logic below the seam"
