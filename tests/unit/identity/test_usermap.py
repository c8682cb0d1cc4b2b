"""The ~/.globus/s3 credential map: format, hostile input, permissions, editing."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from s3dsi.identity.usermap import (
    MapEntry,
    MapError,
    UserMap,
    check_entry,
    edit_map_text,
    read_map_text,
    write_map_text,
)
from s3dsi.observability.logging import redact_text

SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
SECRET2 = "je7MtGbClwBF/2Zp9Utk/h3yCo8nvbEXAMPLEKEY"


def private_map(tmp_path: Path, content: bytes | str, mode: int = 0o600) -> Path:
    directory = tmp_path / ".globus"
    directory.mkdir(mode=0o700, exist_ok=True)
    path = directory / "s3"
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    path.chmod(mode)
    return path


def parse(text: str | bytes) -> UserMap:
    return UserMap.parse(text.encode() if isinstance(text, str) else text, "s3")


def test_three_and_four_field_lines() -> None:
    usermap = parse(f"alice;AKIAALICE;{SECRET}\nbob;AKIABOB;{SECRET2};arn:aws:iam::123456789012:role/x\n")
    assert usermap.lookup("alice") == MapEntry("alice", "AKIAALICE", SECRET, None)
    bob = usermap.lookup("bob")
    assert bob is not None
    assert bob.extra == "arn:aws:iam::123456789012:role/x"
    assert usermap.lookup("carol") is None
    assert usermap.users() == ["alice", "bob"]
    assert len(usermap) == 2
    assert "alice" in usermap


def test_comments_blank_lines_whitespace_crlf_bom_and_unicode() -> None:
    text = (b"\xef\xbb\xbf# map\r\n\r\n   \r\n  alice ; AKIAALICE ;  " + SECRET.encode() + b"  \r\n"
            b"\t# indented comment\r\n" + "jürgen;AKIAJ;".encode() + SECRET2.encode() + b";\r\n")
    usermap = parse(text)
    assert usermap.lookup("alice") == MapEntry("alice", "AKIAALICE", SECRET)
    assert usermap.lookup("jürgen") == MapEntry("jürgen", "AKIAJ", SECRET2, None)


def test_repr_and_str_never_show_the_secret() -> None:
    entry = MapEntry("alice", "AKIAALICE", SECRET)
    assert SECRET not in repr(entry)
    assert SECRET not in str(entry)
    assert SECRET not in repr(parse(f"alice;AKIAALICE;{SECRET}\n"))
    assert "***" in repr(entry)


@pytest.mark.parametrize(("text", "message"), [
    (f"alice;{SECRET}\n", r"s3:1: expected 'localuser;ACCESS_KEY_ID;SECRET_ACCESS_KEY', found 2 field"),
    (f"{SECRET}\n", r"s3:1: expected .*found 1 field"),
    (f"# c\nalice;AKIA;{SECRET};x;y\n", r"s3:2: expected .*at most one more field, found 5"),
    (f";AKIA;{SECRET}\n", r"s3:1: empty user name"),
    (f"alice;;{SECRET}\n", r"s3:1: empty access key id"),
    ("alice;AKIA;\n", r"s3:1: empty secret access key"),
    (f"al ice;AKIA;{SECRET}\n", r"s3:1: user name contains white space"),
    (f"alice;AK IA;{SECRET}\n", r"s3:1: access key id contains white space"),
    (f"alice;AKIA;{SECRET[:10]} {SECRET[10:]}\n", r"s3:1: secret access key contains white space"),
    (f"alice;AKIA;{SECRET}\x07\n", r"s3:1: secret access key contains"),
    (f"alice;AKIA;{SECRET}\n\nalice;AKIB;{SECRET2}\n", r"s3:3: duplicate entry .* on line 1"),
])
def test_malformed_lines_name_the_line_and_never_the_secret(text: str, message: str) -> None:
    with pytest.raises(MapError, match=message) as info:
        parse(text)
    assert SECRET not in str(info.value)
    assert SECRET[:12] not in str(info.value)
    assert SECRET2 not in str(info.value)


def test_binary_junk_nul_bytes_and_bad_utf8() -> None:
    with pytest.raises(MapError, match=r"s3:2: contains a NUL byte") as info:
        parse(f"alice;AKIA;{SECRET}\nbob;AKIB;{SECRET2}\x00\n".encode())
    assert SECRET2 not in str(info.value)
    with pytest.raises(MapError, match=r"s3:1: is not valid UTF-8"):
        parse(b"alice;AKIA;" + bytes(range(128, 256)) + b"\n")
    with pytest.raises(MapError):
        parse(os.urandom(2048).replace(b"\n", b"").replace(b"\0", b"\x01") + b"\n")


def test_huge_lines_and_files(tmp_path: Path) -> None:
    with pytest.raises(MapError, match=r"s3:1: line is longer than"):
        parse("alice;AKIA;" + "s" * (100 * 1024) + "\n")
    path = private_map(tmp_path, b"alice;AKIA;" + b"s" * (10 * 1024 * 1024) + b"\n")
    with pytest.raises(MapError, match="larger than") as info:
        UserMap.load(str(path))
    assert len(str(info.value)) < 200


def test_loaded_secrets_are_registered_for_log_redaction() -> None:
    parse(f"alice;AKIAALICE;{SECRET}\n")
    assert SECRET not in redact_text(f"oops {SECRET} leaked")


def test_load_a_private_file(tmp_path: Path) -> None:
    path = private_map(tmp_path, f"alice;AKIAALICE;{SECRET}\n")
    usermap = UserMap.load(str(path))
    assert usermap.path == str(path)
    assert usermap.lookup("alice") is not None


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o620, 0o602, 0o660, 0o666, 0o610])
def test_group_or_world_access_is_refused(tmp_path: Path, mode: int) -> None:
    path = private_map(tmp_path, f"alice;AKIAALICE;{SECRET}\n", mode)
    with pytest.raises(MapError, match=f"permissions {mode:04o} are too open.*chmod 600") as info:
        UserMap.load(str(path))
    assert SECRET not in str(info.value)


def test_owner_must_be_the_reader_or_root(tmp_path: Path) -> None:
    path = private_map(tmp_path, f"alice;AKIAALICE;{SECRET}\n")
    if os.geteuid() != 0:
        pytest.skip("changing the owner of a file needs root")
    os.chown(path, 54321, 54321)
    with pytest.raises(MapError, match="owned by uid 54321"):
        UserMap.load(str(path))
    assert UserMap.load(str(path), owner_uid=54321).lookup("alice") is not None
    with pytest.raises(MapError, match="owned by uid 54321"):
        UserMap.load(str(path), owner_uid=12345)


def test_directory_writable_by_others_is_refused(tmp_path: Path) -> None:
    path = private_map(tmp_path, f"alice;AKIAALICE;{SECRET}\n")
    path.parent.chmod(0o770)
    with pytest.raises(MapError, match="directory is writable by group or others"):
        UserMap.load(str(path))
    path.parent.chmod(0o757)
    with pytest.raises(MapError, match="directory is writable"):
        UserMap.load(str(path))
    path.parent.chmod(0o755)
    assert len(UserMap.load(str(path))) == 1


def test_symlinks_fifos_directories_and_missing_files(tmp_path: Path) -> None:
    real = private_map(tmp_path, f"alice;AKIAALICE;{SECRET}\n")
    link = real.parent / "link"
    link.symlink_to(real)
    with pytest.raises(MapError, match="symbolic link"):
        UserMap.load(str(link))
    dangling = real.parent / "dangling"
    dangling.symlink_to(real.parent / "nowhere")
    with pytest.raises(MapError, match="symbolic link"):
        UserMap.load(str(dangling))
    fifo = real.parent / "fifo"
    os.mkfifo(fifo, 0o600)
    with pytest.raises(MapError, match="not a regular file"):
        UserMap.load(str(fifo))
    subdir = real.parent / "sub"
    subdir.mkdir(mode=0o700)
    with pytest.raises(MapError):
        UserMap.load(str(subdir))
    with pytest.raises(MapError, match="no such file"):
        UserMap.load(str(real.parent / "absent"))


def test_check_entry_validation() -> None:
    assert check_entry("alice", "AKIA", SECRET, "") == MapEntry("alice", "AKIA", SECRET, None)
    for args in (("#alice", "A", "S"), ("alice", "A;B", "S"), ("alice", "A", "S", "x y")):
        with pytest.raises(MapError):
            check_entry(*args)


def test_editing_keeps_comments_and_other_entries() -> None:
    text = f"# keys\nalice;AKIAALICE;{SECRET}\n\nbob;AKIABOB;{SECRET2};role\n"
    replaced = edit_map_text(text, put=MapEntry("alice", "AKIANEW", SECRET2))
    assert replaced == f"# keys\nalice;AKIANEW;{SECRET2}\n\nbob;AKIABOB;{SECRET2};role\n"
    appended = edit_map_text(text, put=MapEntry("carol", "AKIAC", SECRET))
    assert appended.endswith(f"carol;AKIAC;{SECRET}\n")
    assert appended.startswith(text)
    removed = edit_map_text(text, remove="alice")
    assert removed == f"# keys\n\nbob;AKIABOB;{SECRET2};role\n"


def test_write_creates_private_directory_and_file_atomically(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    path = home / ".globus" / "s3"
    old_umask = os.umask(0)
    try:
        write_map_text(str(path), f"alice;AKIAALICE;{SECRET}\n")
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(os.listdir(path.parent)) == ["s3"]
    assert read_map_text(str(path)) == f"alice;AKIAALICE;{SECRET}\n"
    write_map_text(str(path), f"bob;AKIABOB;{SECRET2}\n")
    assert UserMap.load(str(path)).users() == ["bob"]
    assert sorted(os.listdir(path.parent)) == ["s3"]


def test_write_refuses_an_invalid_map_and_keeps_the_old_one(tmp_path: Path) -> None:
    path = private_map(tmp_path, f"alice;AKIAALICE;{SECRET}\n")
    with pytest.raises(MapError):
        write_map_text(str(path), "alice;AKIA\n")
    assert UserMap.load(str(path)).users() == ["alice"]


def test_root_writes_keep_the_owner_of_the_users_directory(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root")
    home = tmp_path / "home"
    home.mkdir()
    os.chown(home, 54321, 54321)
    path = home / ".globus" / "s3"
    write_map_text(str(path), f"alice;AKIAALICE;{SECRET}\n", owner_uid=54321)
    assert (path.parent.stat().st_uid, path.stat().st_uid, path.stat().st_gid) == (54321, 54321, 54321)
    assert UserMap.load(str(path), owner_uid=54321).users() == ["alice"]
