from __future__ import annotations

import asyncio
import os
import weakref

import pytest

from s3dsi.protocol.errors import TransferAborted
from s3dsi.transfer.buffers import BufferPool

K = 1024


def test_budget_is_a_hard_cap_and_buffers_are_reused() -> None:
    pool = BufferPool(4 * K)
    a = pool.try_acquire(2 * K)
    b = pool.try_acquire(2 * K)
    assert a is not None
    assert b is not None
    assert pool.try_acquire(1) is None
    assert pool.in_use == 4 * K
    backing = a.view.obj
    pool.release(a)
    assert pool.in_use == 2 * K
    assert pool.cached == 2 * K
    c = pool.try_acquire(2 * K)
    assert c is not None
    assert c.view.obj is backing
    pool.release(b)
    pool.release(c)
    d = pool.try_acquire(3 * K)  # another size: idle buffers are dropped to make room
    assert d is not None
    assert pool.in_use + pool.cached <= pool.budget


def test_reserve_keeps_room_for_the_lowest_part() -> None:
    pool = BufferPool(4 * K)
    acc_a, acc_b = pool.open_account("a"), pool.open_account("b")
    acc_a.set_priority(1, K)
    acc_b.set_priority(1, K)
    assert pool.try_acquire(K, account=acc_a, key=2) is not None
    assert pool.try_acquire(K, account=acc_b, key=2) is not None
    # 2 K in use, 2 K reserved: ordinary requests must wait, the priority ones get through
    assert pool.try_acquire(K, account=acc_a, key=3) is None
    assert pool.try_acquire(K, account=acc_a, key=1) is not None
    acc_a.set_priority(1, 0)
    assert pool.try_acquire(K, account=acc_b, key=1) is not None
    acc_b.close()
    acc_a.close()


async def test_waiters_are_served_in_order_priority_first() -> None:
    pool = BufferPool(2 * K)
    acc = pool.open_account()
    held = [pool.try_acquire(K), pool.try_acquire(K)]
    order: list[str] = []

    async def want(name: str, key: int) -> None:
        buf = await pool.acquire(K, account=acc, key=key)
        order.append(name)
        pool.release(buf)

    acc.set_priority(7, 0)
    tasks = [asyncio.ensure_future(want("ordinary", 3)), asyncio.ensure_future(want("lowest", 7))]
    await asyncio.sleep(0)
    assert pool.try_acquire(K) is None  # no overtaking of queued waiters
    for buf in held:
        assert buf is not None
        pool.release(buf)
        await asyncio.sleep(0.01)
    await asyncio.gather(*tasks)
    assert order == ["lowest", "ordinary"]
    assert pool.in_use == 0


async def test_fail_waiters_wakes_with_the_error() -> None:
    pool = BufferPool(K)
    acc = pool.open_account()
    buf = pool.try_acquire(K)
    waiter = asyncio.ensure_future(pool.acquire(K, account=acc, key=1))
    await asyncio.sleep(0)
    pool.fail_waiters(acc, TransferAborted())
    with pytest.raises(TransferAborted):
        await waiter
    assert buf is not None
    pool.release(buf)
    assert pool.in_use == 0


async def test_cancelled_waiter_does_not_leak() -> None:
    pool = BufferPool(K)
    buf = pool.try_acquire(K)
    waiter = asyncio.ensure_future(pool.acquire(K))
    await asyncio.sleep(0)
    assert buf is not None
    pool.release(buf)  # granted to the waiter, delivered on the next loop turn...
    waiter.cancel()  # ...which gives up first
    await asyncio.sleep(0.01)
    assert pool.in_use == 0


async def test_cancel_after_delivery_returns_the_buffer() -> None:
    pool = BufferPool(K)
    buf = pool.try_acquire(K)
    assert buf is not None
    waiter = asyncio.ensure_future(pool.acquire(K))
    await asyncio.sleep(0)
    pool.release(buf)
    await asyncio.sleep(0)  # the buffer is delivered to the waiter's future...
    waiter.cancel()  # ...and its task is cancelled before it resumes
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert pool.in_use == 0


def test_buffers_are_zeroed_private_memory_dropped_on_eviction() -> None:
    pool = BufferPool(8 * K)
    buf = pool.try_acquire(8 * K)
    assert buf is not None
    assert bytes(buf.view) == bytes(8 * K)
    buf.view[:3] = b"abc"
    pid = os.fork()
    if pid == 0:  # a forked child must get its own copy, never write into the parent's buffers
        buf.view[:3] = b"xyz"
        os._exit(0)
    os.waitpid(pid, 0)
    assert bytes(buf.view[:3]) == b"abc"
    backing = weakref.ref(buf.view.obj)
    pool.release(buf)
    del buf
    other = pool.try_acquire(4 * K)  # another size: the idle 8 KiB buffer is evicted, and freed
    assert other is not None
    assert backing() is None
    assert pool.in_use + pool.cached <= pool.budget
