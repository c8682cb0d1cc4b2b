"""Protected against clear transfers through one s3dsi daemon, in one run (a measurement, not a test).

    .venv/bin/python bench/secure_bench.py [--size 1G] [--repeat 3] [--profile]

One juicefs S3 gateway (as bench/transfer_bench.py), one daemon configured with a throwaway test PKI
(tests/support/pki.py: host certificate, CA with signing policy, grid-mapfile, a grid-proxy-init
proxy), and in every round, alternated:

* ``globus-url-copy -p 4`` over ``ftp://`` (clear) and over ``gsiftp://`` with ``-dcpriv`` (GSI, DCAU A,
  PROT P: every data connection a mutual TLS session) and with the default DCAU A / PROT C;
* ``curl`` in stream mode over ``ftp://`` and over FTPS with ``--ssl-reqd`` (PROT P);

up and down, each upload checked and each download compared outside the timed part. It prints the
median MiB/s per case, its ratio to the clear case of the same client and direction, and the daemon's
CPU seconds per GiB; ``--profile`` adds where the daemon's CPU goes during a ``-dcpriv -p 4`` upload
and download (per-thread CPU, perf by library, py-spy's GIL view: bench/daemon_profile.py).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path[:0] = [str(REPO), str(BENCH)]

import daemon_profile  # noqa: E402
import procstats  # noqa: E402
from benchfiles import GiB, MiB, make_file, parse_size, same_bytes  # noqa: E402
from benchreport import Run, print_table, summarize  # noqa: E402
from juicefs_gateway import find_juicefs, start_gateway  # noqa: E402
from transfer_bench import Bench, ClientResult, Variant, spawn  # noqa: E402

CLEAR = {"guc": "ftp guc -p 4", "curl": "ftp curl"}


def curl_argv(url: str, direction: str, local: Path, *, tls: bool, ca_file: str) -> list[str]:
    tls_opts = ["--ssl-reqd", "--cacert", ca_file] if tls else []
    if direction == "up":
        return ["curl", "-sS", *tls_opts, "-T", str(local), url]
    return ["curl", "-sS", *tls_opts, "-o", str(local), url]


def run(args: argparse.Namespace) -> None:
    import boto3  # noqa: PLC0415
    from botocore.config import Config  # noqa: PLC0415
    from tests.support.pki import build_pki  # noqa: PLC0415
    from tests.support.s3dsi_env import client_env  # noqa: PLC0415

    from s3dsi.security.trust import subject_hash  # noqa: PLC0415

    work = Path(args.workdir) / f"s3dsi-secure-bench-{os.getpid()}"
    work.mkdir(parents=True)
    pki_dir = Path(tempfile.mkdtemp(prefix="s3dsi-bench-pki-"))
    gateway = start_gateway(work / "juicefs", find_juicefs(install=not args.no_install))
    variant = Variant("s3dsi")
    try:
        pki = build_pki(pki_dir)
        ca_file = str(pki.cert_dir / f"{subject_hash(pki.ca.cert)}.0")
        variant.env = pki.server_env()
        variant.start(gateway, work / "s3dsi")
        daemon = variant.daemon
        s3 = boto3.session.Session().client(
            "s3", endpoint_url=gateway.endpoint, region_name="us-east-1",
            config=Config(s3={"addressing_style": "path"}), aws_access_key_id=gateway.access_key,
            aws_secret_access_key=gateway.secret_key)
        bench = Bench(args, gateway, [variant], client_env(), s3, work)
        gsi_env = pki.client_env()
        size = parse_size(args.size)
        src, dst = work / "source.bin", work / "download.bin"
        print(f"juicefs gateway pid {gateway.pid}; s3dsi pid {variant.pid}; making a {size / GiB:.2f} GiB "
              f"file ...", flush=True)
        make_file(src, size)
        bucket = gateway.bucket

        def ftp(path: str) -> str:
            assert variant.url is not None
            return variant.url(path)

        gsi = f"gsiftp://127.0.0.1:{daemon.port}"
        cases: list[tuple[str, str, list[str], dict[str, str]]] = []  # case, kind, extra args, env
        cases.append((CLEAR["guc"], "guc", [], bench.client_env))
        cases.append(("gsiftp guc -p 4 DCAU A", "guc-gsi", [], gsi_env))
        cases.append(("gsiftp guc -p 4 -dcpriv", "guc-gsi", ["-dcpriv"], gsi_env))
        cases.append((CLEAR["curl"], "curl", [], bench.client_env))
        cases.append(("FTPS curl PROT P", "curl-tls", [], bench.client_env))

        def transfer(case: str, kind: str, extra: list[str], env: dict[str, str], direction: str) -> Run:
            key = f"{case.replace(' ', '_')}-{bench.round}"
            if kind.startswith("guc"):
                remote = (ftp(f"/{bucket}/{key}") if kind == "guc" else f"{gsi}/{bucket}/{key}")
                local = f"file://{src if direction == 'up' else dst}"
                argv = ["globus-url-copy", "-p", "4", *extra,
                        *((local, remote) if direction == "up" else (remote, local))]
            else:
                url = ftp(f"/{bucket}/{key}")
                argv = curl_argv(url, direction, src if direction == "up" else dst, tls=kind == "curl-tls",
                                 ca_file=ca_file)

            def action() -> ClientResult:
                return spawn(argv, env)

            return bench.measure(case, direction, size, action, variant.pid)

        for bench.round in range(1, args.repeat + 1):
            print(f"round {bench.round}/{args.repeat}", flush=True)
            for case, kind, extra, env in cases:
                transfer(case, kind, extra, env, "up")
                key = f"{case.replace(' ', '_')}-{bench.round}"
                head = s3.head_object(Bucket=bucket, Key=key)
                if head["ContentLength"] != size:
                    raise SystemExit(f"{case}: stored {head['ContentLength']} bytes, expected {size}")
                transfer(case, kind, extra, env, "down")
                if not same_bytes(src, dst):
                    raise SystemExit(f"{case}: the download differs from the source")
                dst.unlink()
                s3.delete_object(Bucket=bucket, Key=key)

        print_report(bench.runs)
        if args.profile:
            for direction in ("up", "down"):
                key = "profiled"
                local = f"file://{src if direction == 'up' else dst}"
                remote = f"{gsi}/{bucket}/{key}"
                argv = ["globus-url-copy", "-p", "4", "-dcpriv",
                        *((local, remote) if direction == "up" else (remote, local))]
                print(f"\n== profile: gsiftp -dcpriv -p 4 {direction}", flush=True)
                print(daemon_profile.profile_transfer(variant.pid, lambda a=argv: spawn(a, gsi_env),
                                                      Path(args.profile_dir) / f"secure-{direction}"))
                if direction == "down":
                    dst.unlink()
            s3.delete_object(Bucket=bucket, Key="profiled")
        print(f"daemon idle RSS at the end: {procstats.rss_bytes(variant.pid) // MiB} MiB")
    finally:
        if variant.daemon is not None:
            variant.daemon.stop()
        gateway.stop()
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(pki_dir, ignore_errors=True)


def _client(case: str) -> str:
    return "curl" if "curl" in case else "guc"


def print_report(runs: list[Run]) -> None:
    """Median MiB/s and daemon CPU s/GiB per case, and the median over rounds of its speed divided by
    the clear case's of the same client and direction in the same round (robust to drifting load)."""
    print_table(summarize(runs))
    clear = {(_client(r.case), r.direction, r.round): r.mib_s for r in runs if r.case in CLEAR.values()}
    print(f"\n{'case':<28} {'dir':<5} {'ratio to clear (same round, median)':>36}")
    for case, direction in dict.fromkeys((r.case, r.direction) for r in runs):
        if case in CLEAR.values():
            continue
        ratios = [r.mib_s / clear[(_client(case), direction, r.round)] for r in runs
                  if r.case == case and r.direction == direction]
        print(f"{case:<28} {direction:<5} {statistics.median(ratios):36.2f}")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--size", default="1G")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--profile-dir", default="/tmp/s3dsi-bench-profile")
    parser.add_argument("--workdir", default="/dev/shm")
    parser.add_argument("--wait-idle", type=float, default=0.0)
    parser.add_argument("--no-install", action="store_true")
    run(parser.parse_args(argv))


if __name__ == "__main__":
    main()
