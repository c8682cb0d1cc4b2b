"""Log lines, levels, destinations, and that secrets never reach them."""

from __future__ import annotations

import http.server
import io
import json
import logging
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from botocore.config import Config

from s3dsi.config.settings import Settings
from s3dsi.observability.logging import (
    TRANSFER_LOGGER,
    RedactingFilter,
    configure_logging,
    get_logger,
    redact_text,
    register_secret,
    stdlib_level,
)

SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYLOGTESTKEY"
TOKEN = "FwoGZXIvYXdzEJr//////////wEaDLOGTESTTOKEN+abc/def=="
ACCESS_KEY = "AKIALOGTEST000000001"


def lines(stream: io.StringIO) -> list[str]:
    return stream.getvalue().splitlines()


def test_key_value_lines_with_bound_context() -> None:
    out = io.StringIO()
    configure_logging(Settings(log_level="ALL"), stream=out)
    get_logger("s3dsi.session", user="alice").info("login accepted", remote="127.0.0.1")
    [line] = lines(out)
    assert line.startswith("timestamp=")
    for part in ("level=info", "logger=s3dsi.session", 'event="login accepted"', "user=alice",
                 "remote=127.0.0.1"):
        assert part in line


def test_json_lines() -> None:
    out = io.StringIO()
    configure_logging(Settings(log_level="ALL", log_format="json"), stream=out)
    get_logger("s3dsi.x").warning("two\nlines", size=3)
    logging.getLogger("foreign").error("stdlib %s", "record")
    records = [json.loads(line) for line in lines(out)]
    assert records[0]["event"] == "two\nlines"
    assert records[0]["size"] == 3
    assert records[0]["level"] == "warning"
    assert records[1]["event"] == "stdlib record"
    assert records[1]["logger"] == "foreign"


def test_one_event_per_line_even_with_newlines_and_exceptions() -> None:
    out = io.StringIO()
    configure_logging(Settings(log_level="ALL"), stream=out)
    log = get_logger("s3dsi.x")
    log.error("first\nsecond\nthird")
    try:
        raise RuntimeError("boom\nwith newline")
    except RuntimeError:
        log.exception("failed")
        logging.getLogger("foreign").exception("stdlib\nfailed")
    assert len(lines(out)) == 3
    assert "RuntimeError" in lines(out)[1]


@pytest.mark.parametrize(("level", "shown"), [
    ("ERROR", {"error"}), ("ERROR,WARN", {"error", "warning"}), ("WARN", {"error", "warning"}),
    ("INFO", {"error", "warning", "info"}), ("DUMP", {"error", "warning", "info", "debug"}),
    ("ALL", {"error", "warning", "info", "debug"}), ("4", {"error", "warning"}),
    ("8", {"error", "warning", "info"}), ("0", set()),
])
def test_gt_levels(level: str, shown: set[str]) -> None:
    out = io.StringIO()
    configure_logging(Settings(log_level=level), stream=out)
    log = get_logger("s3dsi.x")
    for method in ("debug", "info", "warning", "error"):
        getattr(log, method)(method)
    assert {line.split("level=")[1].split()[0] for line in lines(out)} == shown


def test_stdlib_level_mapping() -> None:
    assert stdlib_level("ERROR") == logging.ERROR
    assert stdlib_level("error,warn") == logging.WARNING
    assert stdlib_level("ALL") == logging.DEBUG
    assert stdlib_level("TRANSFER") > logging.CRITICAL


def test_transfer_stats_follow_the_transfer_level_and_log_transfer(tmp_path: Path) -> None:
    out = io.StringIO()
    configure_logging(Settings(log_level="ERROR"), stream=out)
    get_logger(TRANSFER_LOGGER).info("Transfer stats", bytes=10)
    assert lines(out) == []
    configure_logging(Settings(log_level="ERROR,TRANSFER"), stream=out)
    get_logger(TRANSFER_LOGGER).info("Transfer stats", bytes=10)
    get_logger("s3dsi.other").info("not this")
    assert len(lines(out)) == 1
    transfer_log = tmp_path / "transfer.log"
    configure_logging(Settings(log_level="ERROR", log_transfer=str(transfer_log)), stream=out)
    get_logger(TRANSFER_LOGGER).info("Transfer stats", bytes=20)
    assert "bytes=20" in transfer_log.read_text()
    assert len(lines(out)) == 1


def test_log_single_file_is_private_and_reconfiguring_does_not_duplicate(tmp_path: Path) -> None:
    path = tmp_path / "s3dsi.log"
    settings = Settings(log_level="ALL", log_single=str(path))
    configure_logging(settings)
    configure_logging(settings)
    get_logger("s3dsi.x").error("once")
    configure_logging(Settings(log_level="ERROR"), stream=io.StringIO())
    assert path.read_text().count("event=once") == 1
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_secret_keys_and_registered_values_are_redacted() -> None:
    out = io.StringIO()
    configure_logging(Settings(log_level="ALL"), stream=out)
    register_secret(SECRET)
    log = get_logger("s3dsi.x")
    log.info("keys", secret_access_key=SECRET, password="hunter2-pass", session_token=TOKEN,
             authorization="AWS4-HMAC-SHA256 Credential=x", password_file="/etc/s3dsi/passwd")
    log.info(f"value in text {SECRET}", nested={"SecretAccessKey": "abc123xyz", "list": [SECRET]})
    logging.getLogger("foreign").warning("stdlib with args %s and %r", SECRET, {"token": TOKEN})
    try:
        raise ValueError(f"exception mentioning {SECRET}")
    except ValueError:
        log.exception("failure")
    text = out.getvalue()
    for leaked in (SECRET, "hunter2-pass", TOKEN, "AWS4-HMAC", "abc123xyz"):
        assert leaked not in text
    assert "password_file=/etc/s3dsi/passwd" in text
    assert text.count("***") >= 8


@pytest.mark.parametrize(("text", "leak"), [
    ("Authorization: Basic dXNlcjpwYXNzd29yZA==", "dXNlcjpwYXNzd29yZA"),
    ("{'Authorization': b'AWS4-HMAC-SHA256 Credential=AKIA/x, SignedHeaders=host, Signature=abcdef12'}",
     "abcdef12"),
    ("GET /b/k?X-Amz-Signature=deadbeefcafe&X-Amz-Security-Token=FwoGtok HTTP/1.1", "deadbeefcafe"),
    ("GET /b/k?X-Amz-Signature=deadbeefcafe&X-Amz-Security-Token=FwoGtok HTTP/1.1", "FwoGtok"),
    ('{"SecretAccessKey": "s3cr3tValue", "SessionToken": "t0kenValue"}', "s3cr3tValue"),
    ('{"SecretAccessKey": "s3cr3tValue", "SessionToken": "t0kenValue"}', "t0kenValue"),
    ("aws_secret_access_key=abcDEF123 next", "abcDEF123"),
    ("x-amz-security-token:FwoGZXIvYXdzEB\nhost:example", "FwoGZXIvYXdzEB"),
    ("PASS login password: letmein99", "letmein99"),
    # what botocore prints at DEBUG for STS and instance metadata, before s3dsi registers anything
    ("b'<Credentials><AccessKeyId>ASIAX</AccessKeyId><SecretAccessKey>stsS3cret/+x</SecretAccessKey>"
     "<SessionToken>FQoGZXIvYXdzEJr//////////wEa</SessionToken></Credentials>'", "stsS3cret/+x"),
    ("<SessionToken>FQoGZXIvYXdzEJr//////////wEa</SessionToken>", "FQoGZXIvYXdzEJr"),
    ('content body: {"Code" : "Success", "SecretAccessKey" : "imdsS3cret", "Token" : "imdsT0ken"}',
     "imdsS3cret"),
    ('content body: {"Code" : "Success", "SecretAccessKey" : "imdsS3cret", "Token" : "imdsT0ken"}',
     "imdsT0ken"),
    ("Action=AssumeRoleWithWebIdentity&WebIdentityToken=eyJhbGciOiJSUzI1.eyJzdWIi.sig&Version=2011",
     "eyJhbGciOiJSUzI1"),
    ("'body': {'Action': 'AssumeRoleWithWebIdentity', 'WebIdentityToken': 'eyJhbGciOi.e30.c2ln'}",
     "eyJhbGciOi"),
])
def test_text_patterns(text: str, leak: str) -> None:
    assert leak not in redact_text(text)


def test_registered_secret_variants_and_short_values() -> None:
    register_secret("slash/and+plus=secretvalue")
    assert "slash%2Fand%2Bplus%3Dsecretvalue" not in redact_text("q=slash%2Fand%2Bplus%3Dsecretvalue")
    register_secret("ab")
    assert redact_text("abc") == "abc"  # too short to register without blanking ordinary words
    assert redact_text("nothing secret here") == "nothing secret here"


def test_redacting_filter_for_other_handlers() -> None:
    register_secret(SECRET)
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.addFilter(RedactingFilter())
    logger = logging.getLogger("s3dsi.test.filter")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.error("key %s", SECRET)
    finally:
        logger.removeHandler(handler)
    assert SECRET not in out.getvalue()
    assert "key ***" in out.getvalue()


class _StubS3(http.server.BaseHTTPRequestHandler):
    """Answers every request like an empty S3 account (enough for ListBuckets and HeadBucket)."""

    def do_GET(self) -> None:
        body = (b'<?xml version="1.0" encoding="UTF-8"?><ListAllMyBucketsResult '
                b'xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Owner><ID>x</ID></Owner><Buckets>'
                b"</Buckets></ListAllMyBucketsResult>")
        self.send_response(200)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_PUT(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.send_response(200)
        self.send_header("ETag", '"d41d8cd98f00b204e9800998ecf8427e"')
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def stub_s3() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _StubS3)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def _client(endpoint: str) -> object:
    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id=ACCESS_KEY,
                        aws_secret_access_key=SECRET, aws_session_token=TOKEN,
                        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}))


def test_botocore_debug_in_the_s3_debug_file_never_shows_secret_or_token(stub_s3: str,
                                                                       tmp_path: Path) -> None:
    debug_log = tmp_path / "s3.log"
    main = io.StringIO()
    configure_logging(Settings(log_level="ERROR", s3_debug=f"1023,{debug_log}"), stream=main)
    client = _client(stub_s3)
    client.list_buckets()  # type: ignore[attr-defined]
    client.put_object(Bucket="bucket", Key="key", Body=b"data",  # type: ignore[attr-defined]
                      Metadata={"note": "x"})
    text = debug_log.read_text()
    assert "Sending http request" in text  # botocore really logged the request with its headers
    assert "X-Amz-Security-Token" in text
    assert "Authorization" in text
    assert SECRET not in text
    assert TOKEN not in text
    assert TOKEN[:20] not in text
    assert "Signature=" not in text or "Signature=***" in text
    assert main.getvalue() == ""  # verbose S3 output goes to its own file only


def test_s3_debug_without_path_goes_to_the_stream_and_level_zero_is_off(stub_s3: str) -> None:
    out = io.StringIO()
    configure_logging(Settings(log_level="ERROR", s3_debug="0"), stream=out)
    _client(stub_s3).list_buckets()  # type: ignore[attr-defined]
    assert out.getvalue() == ""
    configure_logging(Settings(log_level="ERROR", s3_debug="1023"), stream=out)
    _client(stub_s3).list_buckets()  # type: ignore[attr-defined]
    text = out.getvalue()
    assert "logger=botocore" in text
    assert SECRET not in text
    assert TOKEN not in text


def test_botocore_debug_with_moto_in_process(tmp_path: Path) -> None:
    moto = pytest.importorskip("moto")
    debug_log = tmp_path / "s3.log"
    configure_logging(Settings(log_level="ERROR", s3_debug=f"1,{debug_log}"), stream=io.StringIO())
    with moto.mock_aws():
        client = boto3.client("s3", region_name="us-east-1", aws_access_key_id=ACCESS_KEY,
                              aws_secret_access_key=SECRET, aws_session_token=TOKEN)
        client.create_bucket(Bucket="redaction-test")
        client.put_object(Bucket="redaction-test", Key="k", Body=b"v")
        client.list_objects_v2(Bucket="redaction-test")
    text = debug_log.read_text()
    assert "botocore" in text
    assert SECRET not in text
    assert TOKEN not in text


def test_library_debug_stays_out_of_the_main_log_without_s3_debug(stub_s3: str) -> None:
    out = io.StringIO()
    configure_logging(Settings(log_level="ALL"), stream=out)
    _client(stub_s3).list_buckets()  # type: ignore[attr-defined]
    get_logger("s3dsi.x").debug("ours")
    text = out.getvalue()
    assert "logger=botocore" not in text
    assert "event=ours" in text


def test_unopenable_log_file_keeps_the_previous_configuration(tmp_path: Path) -> None:
    out = io.StringIO()
    configure_logging(Settings(log_level="ERROR"), stream=out)
    with pytest.raises(OSError):
        configure_logging(Settings(log_level="ERROR", log_single=str(tmp_path / "missing" / "x.log")))
    get_logger("s3dsi.x").error("still logged")
    assert "still logged" in out.getvalue()


@pytest.mark.parametrize("log_format", ["kv", "json"])
def test_control_characters_from_clients_are_escaped_in_every_line(log_format: str) -> None:
    """A file name with CR can overwrite what a terminal showed of the line; ESC or CSI (U+009B) start
    terminal control sequences. Neither may reach a log line raw, in our events or in stdlib records."""
    out = io.StringIO()
    configure_logging(Settings(log_level="ALL", log_format=log_format), stream=out)
    evil = "/b/ok.txt\r2024 login ok user=root\x1b[2J\x9b31m\x00\x07"
    get_logger("s3dsi.session").warning("command", path=evil)
    logging.getLogger("foreign").error("path %s", evil)
    text = out.getvalue()
    assert text.count("\n") == 2 and text.endswith("\n")
    body = text[:-1].replace("\n", "")
    assert not any((ord(c) < 0x20 and c != "\t") or 0x7F <= ord(c) <= 0x9F for c in body), repr(body)
    if log_format == "kv":
        assert "\\x0d2024 login ok" in text and "\\x1b[2J" in text and "\\x9b31m" in text
