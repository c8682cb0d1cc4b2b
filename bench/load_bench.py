"""Load and abuse benchmark of the control side (a measurement, not a test): working sessions beside
crowds that try to exhaust the daemon, with the daemon's default limits.

    .venv/bin/python bench/load_bench.py [--sessions 100] [--idle 200] [--slowloris 50] [--flood 300]
                                         [--duration 90] [--size 256K] [--option KEY=VALUE ...]
                                         [--pythonpath OLD_TREE/src]

``s3dsi serve`` runs as a subprocess against a moto S3 server process (tests/support/moto_server.py),
configured like a site (tests/support/s3dsi_env.py) but with the daemon's own connection defaults. All
clients run in this process on one asyncio loop; loopback addresses play the hosts (127.0.0.0/8 is all
local): each crowd comes from its own addresses so that per-address and total limits show separately.

* workers: ``--sessions`` sessions from 127.0.3.1-10 log in, then each loops over STOR and RETR of a
  ``--size`` object (stream mode, PASV) for ``--duration`` seconds, checking every byte;
* idle: ``--idle`` connections that never send a byte, half from 127.0.1.1 and half from 127.0.1.2;
* slowloris: ``--slowloris`` connections from 127.0.2.1 sending one byte every 5 seconds;
* flood: ``--flood`` connections from 127.0.4.1-12, opened after the others (to reach the total limit);
* brute force: from 127.0.5.1, wrong passwords for one name, on a new connection whenever the daemon
  closes one, for the whole run.

It prints: sessions served and transfers done; every reply a crowd connection got first, counted; how
long accepted crowd connections were held before the daemon closed them; the brute force's attempts and
the time each reply took; the daemon's peak RSS (VmHWM, whole process tree) and the most descriptors it
held. Run as root (CI does): the daemon then serves as root in one process (``allow_root``).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import resource
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path[:0] = [str(REPO), str(BENCH)]

import procstats  # noqa: E402
from benchfiles import parse_size  # noqa: E402
from tests.support.moto_server import MotoServerProcess  # noqa: E402
from tests.support.s3dsi_env import PASSWORD, USER, S3dsiConfig  # noqa: E402

TIMEOUT = 30.0


# -- a small asyncio FTP client ---------------------------------------------------------------------------
async def read_reply(reader: asyncio.StreamReader) -> tuple[int, str]:
    first = await reader.readline()
    if not first:
        raise EOFError("closed")
    text = first.decode("utf-8", "replace").rstrip("\r\n")
    if text[3:4] == "-":
        while True:
            line = await reader.readline()
            if not line:
                raise EOFError("closed in a multi-line reply")
            if line.decode("utf-8", "replace").startswith(text[:3] + " "):
                break
    return int(text[:3]), text


async def command(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, line: str) -> tuple[int, str]:
    writer.write(line.encode() + b"\r\n")
    await writer.drain()
    return await asyncio.wait_for(read_reply(reader), TIMEOUT)


def pasv_address(text: str) -> tuple[str, int]:
    numbers = [int(n) for n in text[text.index("(") + 1:text.index(")")].split(",")]
    return ".".join(map(str, numbers[:4])), numbers[4] * 256 + numbers[5]


@dataclass
class Stats:
    logged_in: int = 0
    login_seconds: list[float] = field(default_factory=list)
    transfers: int = 0
    failed: list[str] = field(default_factory=list)
    bytes_moved: int = 0
    first_replies: dict[str, collections.Counter[str]] = field(default_factory=dict)
    held: dict[str, list[float]] = field(default_factory=lambda: collections.defaultdict(list))
    still_open: dict[str, int] = field(default_factory=collections.Counter)
    brute_attempts: int = 0
    brute_reply_seconds: list[float] = field(default_factory=list)
    brute_connections: int = 0


class Bench:
    def __init__(self, host: str, port: int, bucket: str, args: argparse.Namespace) -> None:
        self.host = host
        self.port = port
        self.bucket = bucket
        self.args = args
        self.stats = Stats()
        self.stop = asyncio.Event()
        self.payload = os.urandom(args.size)

    async def connect(self, source: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.wait_for(asyncio.open_connection(self.host, self.port, local_addr=(source, 0)),
                                      TIMEOUT)

    # -- working sessions -------------------------------------------------------------------------------
    async def worker(self, number: int, ready: asyncio.Event) -> None:
        source = f"127.0.3.{number % 10 + 1}"
        try:
            reader, writer = await self.connect(source)
            code, text = await asyncio.wait_for(read_reply(reader), TIMEOUT)
            if code != 220:
                self.stats.failed.append(f"greeting: {text}")
                return
            started = time.monotonic()
            await command(reader, writer, f"USER {USER}")
            code, text = await command(reader, writer, f"PASS {PASSWORD}")
            if code != 230:
                self.stats.failed.append(f"login: {text}")
                return
            self.stats.login_seconds.append(time.monotonic() - started)
            self.stats.logged_in += 1
            await command(reader, writer, "TYPE I")
        except (OSError, EOFError, TimeoutError) as err:
            self.stats.failed.append(f"session {number}: {err!r}")
            return
        await ready.wait()
        n = 0
        while not self.stop.is_set():
            key = f"/{self.bucket}/w{number}-{n % 4}"
            try:
                await self.stor(reader, writer, source, key)
                data = await self.retr(reader, writer, source, key)
                if data != self.payload:
                    self.stats.failed.append(f"{key}: {len(data)} bytes differ")
                self.stats.transfers += 2
                self.stats.bytes_moved += 2 * len(self.payload)
            except (OSError, EOFError, TimeoutError, ValueError) as err:
                self.stats.failed.append(f"{key}: {err!r}")
                break
            n += 1
        try:
            await command(reader, writer, "QUIT")
        except (OSError, EOFError, TimeoutError):
            pass
        writer.close()

    async def stor(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, source: str,
                   key: str) -> None:
        code, text = await command(reader, writer, "PASV")
        if code != 227:
            raise ValueError(text)
        data_host, data_port = pasv_address(text)
        writer.write(f"STOR {key}\r\n".encode())
        await writer.drain()
        _, data_writer = await asyncio.open_connection(data_host, data_port, local_addr=(source, 0))
        code, text = await asyncio.wait_for(read_reply(reader), TIMEOUT)
        if code != 150:
            raise ValueError(text)
        data_writer.write(self.payload)
        await data_writer.drain()
        data_writer.close()
        code, text = await asyncio.wait_for(read_reply(reader), TIMEOUT)
        if code != 226:
            raise ValueError(text)

    async def retr(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, source: str,
                   key: str) -> bytes:
        code, text = await command(reader, writer, "PASV")
        if code != 227:
            raise ValueError(text)
        data_host, data_port = pasv_address(text)
        writer.write(f"RETR {key}\r\n".encode())
        await writer.drain()
        data_reader, data_writer = await asyncio.open_connection(data_host, data_port, local_addr=(source, 0))
        code, text = await asyncio.wait_for(read_reply(reader), TIMEOUT)
        if code != 150:
            raise ValueError(text)
        data = await asyncio.wait_for(data_reader.read(), TIMEOUT)
        data_writer.close()
        code, text = await asyncio.wait_for(read_reply(reader), TIMEOUT)
        if code != 226:
            raise ValueError(text)
        return data

    # -- crowds -------------------------------------------------------------------------------------------
    async def crowd_member(self, crowd: str, source: str, drip: float | None) -> None:
        opened = time.monotonic()
        try:
            reader, writer = await self.connect(source)
        except (OSError, TimeoutError) as err:
            self.stats.first_replies.setdefault(crowd, collections.Counter())[f"connect failed: {err!r}"] += 1
            return
        replies = self.stats.first_replies.setdefault(crowd, collections.Counter())
        try:
            first = await asyncio.wait_for(reader.readline(), TIMEOUT)
        except (OSError, TimeoutError):
            first = b""
        text = first.decode("utf-8", "replace").strip()
        replies[text.split(" GridFTP Server")[0].replace(self.host, "HOST") if text.startswith("220") else
                text or "(closed without a reply)"] += 1
        if not text.startswith("220"):
            writer.close()
            return

        async def dripping() -> None:
            while drip is not None:
                await asyncio.sleep(drip)
                writer.write(b"N")
                await writer.drain()

        dripper = asyncio.ensure_future(dripping())
        try:
            while await reader.read(4096):
                pass
            self.stats.held[crowd].append(time.monotonic() - opened)
        except OSError:
            self.stats.held[crowd].append(time.monotonic() - opened)
        finally:
            dripper.cancel()
            writer.close()

    async def brute_force(self) -> None:
        source = "127.0.5.1"
        while not self.stop.is_set():
            try:
                reader, writer = await self.connect(source)
                code, _ = await asyncio.wait_for(read_reply(reader), TIMEOUT)
                if code != 220:
                    await asyncio.sleep(1)
                    continue
                self.stats.brute_connections += 1
                while not self.stop.is_set():
                    await command(reader, writer, "USER mallory")
                    started = time.monotonic()
                    code, _ = await command(reader, writer, f"PASS guess-{self.stats.brute_attempts}")
                    self.stats.brute_reply_seconds.append(time.monotonic() - started)
                    self.stats.brute_attempts += 1
            except (OSError, EOFError, TimeoutError):
                continue  # the daemon closed it after too many failures: a new connection

    async def run(self) -> None:
        args = self.args
        ready = asyncio.Event()
        workers = [asyncio.ensure_future(self.worker(n, ready)) for n in range(args.sessions)]
        while self.stats.logged_in + len(self.stats.failed) < args.sessions:
            await asyncio.sleep(0.1)
        crowd = [asyncio.ensure_future(self.crowd_member("idle", f"127.0.1.{n % 2 + 1}", None))
                 for n in range(args.idle)]
        crowd += [asyncio.ensure_future(self.crowd_member("slowloris", "127.0.2.1", 5.0))
                  for _ in range(args.slowloris)]
        await asyncio.sleep(2)
        crowd += [asyncio.ensure_future(self.crowd_member("flood", f"127.0.4.{n % 12 + 1}", None))
                  for n in range(args.flood)]
        brute = asyncio.ensure_future(self.brute_force())
        ready.set()
        started = time.monotonic()
        await asyncio.sleep(args.duration)
        self.elapsed = time.monotonic() - started
        self.stop.set()
        await asyncio.gather(*workers, return_exceptions=True)
        brute.cancel()
        if crowd:
            _, pending = await asyncio.wait(crowd, timeout=args.linger)
            for task in pending:
                task.cancel()
        for name in ("idle", "slowloris", "flood"):
            accepted = sum(n for text, n in self.stats.first_replies.get(name, {}).items()
                           if text.startswith("220"))
            self.stats.still_open[name] = accepted - len(self.stats.held[name])


# -- the daemon's side ---------------------------------------------------------------------------------------
class FdSampler:
    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            count = 0
            for pid in procstats.tree(self.pid):
                try:
                    count += len(os.listdir(f"/proc/{pid}/fd"))
                except OSError:
                    continue
            self.peak = max(self.peak, count)

    def __enter__(self) -> FdSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def report(bench: Bench, args: argparse.Namespace, peak_rss: int, peak_fds: int, idle_rss: int,
           settings: dict[str, str]) -> str:
    s = bench.stats
    lines = [f"load_bench: {args.sessions} working sessions, {args.idle} idle, {args.slowloris} slowloris, "
             f"{args.flood} flood connections, brute force from one address; {args.duration:.0f} s, "
             f"{args.size // 1024} KiB objects; daemon options: {settings}", ""]
    logins = s.login_seconds or [0.0]
    lines.append(f"sessions served: {s.logged_in}/{args.sessions} logged in (login median "
                 f"{statistics.median(logins):.3f} s, max {max(logins):.3f} s); "
                 f"{s.transfers} transfers ({s.transfers / bench.elapsed:.1f}/s, "
                 f"{s.bytes_moved / bench.elapsed / 2**20:.1f} MiB/s), {len(s.failed)} failures")
    for failure in s.failed[:5]:
        lines.append(f"    {failure}")
    lines.append("")
    lines.append("first reply per crowd connection:")
    for crowd in ("idle", "slowloris", "flood"):
        for text, count in sorted(bench.stats.first_replies.get(crowd, {}).items(), key=lambda kv: -kv[1]):
            lines.append(f"    {crowd:<9} {count:>4}  {text}")
    lines.append("")
    lines.append("accepted crowd connections, closed by the daemon after (s):")
    for crowd in ("idle", "slowloris", "flood"):
        held = s.held.get(crowd, [])
        if held:
            lines.append(f"    {crowd:<9} {len(held):>4}  min {min(held):.1f}  median "
                         f"{statistics.median(held):.1f}  max {max(held):.1f}; still open at the end: "
                         f"{s.still_open[crowd]}")
        else:
            lines.append(f"    {crowd:<9}    0  still open at the end: {s.still_open[crowd]}")
    lines.append("")
    waits = s.brute_reply_seconds
    lines.append(f"brute force: {s.brute_attempts} wrong passwords in {bench.elapsed:.0f} s over "
                 f"{s.brute_connections} connections; reply after (s): "
                 + ", ".join(f"{w:.1f}" for w in waits[:12]) + (" ..." if len(waits) > 12 else ""))
    lines.append("")
    lines.append(f"daemon: RSS idle {idle_rss / 2**20:.0f} MiB, peak {peak_rss / 2**20:.0f} MiB; "
                 f"most descriptors open at once: {peak_fds}")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=100)
    parser.add_argument("--idle", type=int, default=200)
    parser.add_argument("--slowloris", type=int, default=50)
    parser.add_argument("--flood", type=int, default=300)
    parser.add_argument("--duration", type=float, default=90.0)
    parser.add_argument("--linger", type=float, default=30.0,
                        help="seconds to wait after the run for the daemon to close what is left")
    parser.add_argument("--size", type=parse_size, default=256 * 1024)
    parser.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                        help="a gridftp.d option for the daemon (e.g. control_preauth_timeout=30)")
    parser.add_argument("--pythonpath", metavar="DIR",
                        help="run the daemon from another source tree (DIR/s3dsi), e.g. an older version")
    args = parser.parse_args()
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 65536), hard))  # the clients' own sockets
    options = dict(item.split("=", 1) for item in args.option)
    with tempfile.TemporaryDirectory(prefix="s3dsi-load-") as scratch:
        root = Path(scratch)
        with MotoServerProcess.start(root / "moto") as moto:
            bucket = moto.create_bucket()
            # one process, as measured in docs/performance.md; --option workers=N for more
            gridftp = {"log_level": "ERROR", "workers": "1",
                       **({"allow_root": "1"} if os.geteuid() == 0 else {}), **options}
            config = S3dsiConfig(root / "site", moto.endpoint, moto.access_key, moto.secret_key,
                                 gridftp_options=gridftp).write()
            daemon = config.start(env={"PYTHONPATH": args.pythonpath} if args.pythonpath else None)
            try:
                pid = daemon.process.pid
                time.sleep(1)
                idle_rss = procstats.rss_bytes(pid)
                bench = Bench(daemon.host, daemon.port, bucket, args)
                with procstats.RssSampler(pid, interval=0.1) as rss, FdSampler(pid) as fds:
                    asyncio.run(bench.run())
                shown = {k: v for k, v in gridftp.items() if k != "allow_root"}
                print(report(bench, args, rss.peak, fds.peak, idle_rss, shown or {"defaults": "all"}))
            finally:
                daemon.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
