"""The repository's own promises: README's two commands, and CI running exactly the test command."""

from __future__ import annotations

import ast
import re
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


# -- the Debian packages scripts/test installs cover every program the tests run ------------------

def apt_packages() -> set[str]:
    script = (REPO / "scripts" / "test").read_text()
    block = script.split("APT_PACKAGES=(", 1)[1].split(")", 1)[0]
    return {word for line in block.splitlines() for word in line.split("#", 1)[0].split()}


_PROGRAM_CALLS = {"need", "which", "gfal"}  # f("program", ...)
_ARGV_CALLS = {"run", "Popen", "check_output", "check_call", "popen"}  # f(["program", ...], ...)


def _called_name(node: ast.Call) -> str | None:
    if isinstance(node.func, ast.Name):
        return node.func.id
    if isinstance(node.func, ast.Attribute):
        return node.func.attr
    return None


def programs_the_tests_run() -> dict[str, set[str]]:
    """Program name -> test files that run it: literal names passed to need/which/gfal, and the first
    element of literal argv lists passed to run/Popen/check_output."""
    found: dict[str, set[str]] = {}
    for path in (REPO / "tests").rglob("*.py"):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call) or not node.args:
                continue
            name, first = _called_name(node), node.args[0]
            program = None
            if name in _PROGRAM_CALLS and isinstance(first, ast.Constant) and isinstance(first.value, str):
                program = first.value
            elif name in _ARGV_CALLS and isinstance(first, ast.List) and first.elts:
                head = first.elts[0]
                if isinstance(head, ast.Constant) and isinstance(head.value, str):
                    program = head.value
                elif isinstance(head, ast.Call) and _called_name(head) == "need":
                    continue  # need("x") is counted on its own
            if program is not None and "/" not in program and program not in _NOT_PROGRAMS:
                found.setdefault(program, set()).add(str(path.relative_to(REPO)))
    return found


# first elements of argv lists that are s3dsi's own subcommands (run through the s3dsi entry point)
_NOT_PROGRAMS = {"map", "passwd", "policy", "port", "check-config", "status", "janitor", "probe", "serve",
                 "python3", "md5", "alice", "type", "sub", "stream", "pasv", "memory", "lowest", "ftplib",
                 "first-try", "fast-p2", "f0.bin", "abc", "ab", "a-b", "us-east-1", "over-existing",
                 "stream-over-existing"}


def test_every_program_the_tests_run_has_its_debian_package_installed_by_scripts_test() -> None:
    from tests.support.programs import ESSENTIAL_PACKAGES, PROGRAMS  # noqa: PLC0415

    runs = programs_the_tests_run()
    unknown = {p: sorted(files) for p, files in runs.items() if p not in PROGRAMS}
    assert not unknown, f"programs the tests run but tests/support/programs.py does not list: {unknown}"
    listed = apt_packages()
    missing = {prog: pkg for prog, pkg in PROGRAMS.items()
               if pkg not in listed and pkg not in ESSENTIAL_PACKAGES}
    assert not missing, f"packages scripts/test does not install: {missing}"


def test_gfal_plugins_for_every_url_scheme_the_gfal_tests_use_are_installed() -> None:
    from tests.support.programs import GFAL_PLUGINS  # noqa: PLC0415

    listed = apt_packages()
    schemes: set[str] = set()
    for path in (REPO / "tests").rglob("*gfal*.py"):
        text = path.read_text()
        schemes |= set(re.findall(r"\b(file|ftp|gsiftp|https?|davs?|root|s3|srm)://", text))
        if ".as_uri()" in text:
            schemes.add("file")
    assert "file" in schemes and "ftp" in schemes  # the scan sees the tests
    for scheme in schemes:
        assert scheme in GFAL_PLUGINS, f"gfal tests use {scheme}:// but no plugin package is listed for it"
        assert GFAL_PLUGINS[scheme] in listed, f"scripts/test does not install {GFAL_PLUGINS[scheme]}"
