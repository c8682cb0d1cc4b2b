"""Path arguments to normalised absolute paths (the form every storage back end receives).

``resolve`` joins a relative argument to the working directory, collapses ``//`` and ``.``, and
applies ``..`` without ever going above ``/``. The result has no trailing slash except ``/``
itself. A trailing slash on the argument is remembered separately (``names_directory``): ``MLSD
dir/`` and ``MLST dir/`` mean "this must be a directory", and MLST echoes the argument as given.
Key segments S3 allows but this form cannot express (empty, ``.``, ``..``) are not reachable.
"""

from __future__ import annotations

from dataclasses import dataclass


def resolve(cwd: str, arg: str | None) -> str:
    """Absolute normalised path of ``arg`` seen from ``cwd``; ``cwd`` itself for None or ``""``."""
    text = arg if arg else cwd
    if not text.startswith("/"):
        text = f"{cwd}/{text}"
    parts: list[str] = []
    for segment in text.split("/"):
        if segment in ("", "."):
            continue
        if segment == "..":
            if parts:
                parts.pop()
            continue
        parts.append(segment)
    return "/" + "/".join(parts)


def names_directory(arg: str | None) -> bool:
    """True when the argument ends with ``/`` (the client insists on a directory)."""
    return arg is not None and arg.endswith("/")


def parent(path: str) -> str:
    """Parent of a normalised absolute path; ``/`` is its own parent."""
    head, _, _ = path.rpartition("/")
    return head or "/"


def basename(path: str) -> str:
    """Last segment of a normalised absolute path; ``""`` for ``/``."""
    return path.rpartition("/")[2]


@dataclass(frozen=True)
class Target:
    """A path argument: resolved, as the client wrote it (for echoing), and its trailing-slash hint."""

    path: str
    given: str
    trailing_slash: bool = False

    @classmethod
    def of(cls, cwd: str, arg: str | None) -> Target:
        return cls(path=resolve(cwd, arg), given=arg if arg else cwd, trailing_slash=names_directory(arg))
