"""Password checks run on a small pool of their own, and across session processes at most that many
processes check at once."""

from __future__ import annotations

import asyncio
import os
import threading
import time

from s3dsi.server.loginpool import LoginPool, ProcessSlots


async def test_checks_run_on_login_threads_two_at_a_time() -> None:
    pool = LoginPool(2)
    running = 0
    peak = 0
    lock = threading.Lock()

    def check() -> str:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.05)
        with lock:
            running -= 1
        return threading.current_thread().name

    try:
        names = await asyncio.gather(*(pool.run(check) for _ in range(8)))
    finally:
        pool.shutdown()
    assert peak == 2
    assert all(name.startswith("s3dsi-login") for name in names)


def test_slots_bound_the_processes_that_check_at_once() -> None:
    """Four forked processes want a slot of two: never more than two hold one at the same time."""
    slots = ProcessSlots(2)
    read_end, write_end = os.pipe()
    pids = []
    for _ in range(4):
        pid = os.fork()
        if pid == 0:  # pragma: no cover - child
            os.close(read_end)
            with slots.held() as slot:
                os.write(write_end, f"+{slot}\n".encode())
                time.sleep(0.3)
                os.write(write_end, f"-{slot}\n".encode())
            os._exit(0)
        pids.append(pid)
    os.close(write_end)
    for pid in pids:
        os.waitpid(pid, 0)
    events = b""
    while chunk := os.read(read_end, 4096):
        events += chunk
    os.close(read_end)
    holding: set[str] = set()
    peak = 0
    for event in events.decode().split():
        if event[0] == "+":
            assert event[1:] not in holding, "a slot was held twice at once"
            holding.add(event[1:])
        else:
            holding.discard(event[1:])
        peak = max(peak, len(holding))
    assert peak == 2 and events.decode().count("+") == 4
    slots.close()


def test_a_slot_dies_with_its_process() -> None:
    slots = ProcessSlots(1)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child: takes the only slot and is killed holding it
        with slots.held():
            time.sleep(30)
        os._exit(0)
    time.sleep(0.3)
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    done = threading.Event()

    def take() -> None:
        with slots.held():
            done.set()

    taker = threading.Thread(target=take, daemon=True)
    taker.start()
    assert done.wait(10)
    taker.join(10)
    slots.close()


def test_closed_slots_let_a_check_through() -> None:
    slots = ProcessSlots(1)
    slots.close()
    with slots.held() as slot:
        assert slot == -1
