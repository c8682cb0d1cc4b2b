"""The repository's own promises: README's two commands, and CI running exactly the test command."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_readme_opens_with_the_demo_and_test_commands() -> None:
    text = (REPO / "README.md").read_text()
    block = text.split("```sh\n", 1)[1].split("```", 1)[0]
    commands = [line.strip() for line in block.splitlines() if line.strip()]
    assert len(commands) == 2
    assert commands[0].endswith("s3dsi serve --demo")
    assert commands[1] == "./scripts/test"
    assert text.index("```sh") < 20  # the first thing in the file after the title


def test_ci_runs_the_readme_test_command() -> None:
    ci = (REPO / ".ci" / "run").read_text()
    assert "exec ./scripts/test" in ci
    script = (REPO / "scripts" / "test").read_text()
    assert "apt-get update" in script and "pip install" in script and "pytest" in script
