"""Arbitrary bytes never crash the readers: they either parse or fail with the module's own error."""

from __future__ import annotations

from collections.abc import Callable

from hypothesis import given, settings
from hypothesis import strategies as st

from s3dsi.config.gridftp_conf import lex_line, parse_conf
from s3dsi.config.s3_conf import parse_s3_conf
from s3dsi.config.textfile import TextFileError
from s3dsi.identity.passwords import PasswordFile, PasswordFileError
from s3dsi.identity.usermap import MapError, UserMap


def failure(call: Callable[[], object], expected: type[Exception]) -> str | None:
    """The message of ``expected`` raised by ``call`` (anything else propagates), None if it passed."""
    try:
        call()
    except expected as exc:
        return str(exc)
    return None


junk = st.binary(max_size=2048) | st.text(max_size=512).map(lambda t: t.encode("utf-8"))
words = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc", "Zs", "Zl", "Zp"),
                                       blacklist_characters='"#$'), min_size=1, max_size=20)


@settings(max_examples=200, deadline=None)
@given(junk)
def test_gridftp_files(data: bytes) -> None:
    message = failure(lambda: parse_conf(data, "f"), TextFileError)
    assert message is None or message


@settings(max_examples=200, deadline=None)
@given(junk)
def test_s3_conf_files(data: bytes) -> None:
    message = failure(lambda: parse_s3_conf(data, "f"), TextFileError)
    assert message is None or message


@settings(max_examples=200, deadline=None)
@given(junk)
def test_map_files(data: bytes) -> None:
    message = failure(lambda: UserMap.parse(data, "f"), MapError)
    assert message is None or message.startswith("f")


@settings(max_examples=200, deadline=None)
@given(junk)
def test_password_files(data: bytes) -> None:
    message = failure(lambda: PasswordFile.parse(data, "f"), PasswordFileError)
    assert message is None or message.startswith("f")


@settings(max_examples=200, deadline=None)
@given(words, st.text(max_size=40).filter(lambda t: '"' not in t and "\n" not in t))
def test_quoted_values_round_trip(name: str, value: str) -> None:
    assert lex_line(f'{name} "{value}"') == (name, value, False)
