"""Console output batching: many single-byte UART writes become few ConsoleOut frames."""

from __future__ import annotations

import asyncio
import threading

from gunyah_net.worker.console_out import CHUNK_BYTES, ConsoleBatcher


async def _settle(batcher: ConsoleBatcher) -> None:
    await asyncio.sleep(0)  # run the scheduled _arm / flush callbacks
    await asyncio.sleep(0)
    batcher.flush()


async def test_bytes_written_before_the_loop_runs_go_out_as_one_frame():
    sent: list[bytes] = []
    batcher = ConsoleBatcher(asyncio.get_running_loop(), sent.append)
    for byte in b"x" * 10_000:
        batcher.write(bytes((byte,)))
    await _settle(batcher)
    assert sent == [b"x" * 10_000]


async def test_a_short_line_is_sent_by_the_timer():
    sent: list[bytes] = []
    done = asyncio.Event()
    batcher = ConsoleBatcher(asyncio.get_running_loop(), lambda d: (sent.append(d), done.set()))
    for byte in b"hello\n":
        batcher.write(bytes((byte,)))
    await asyncio.wait_for(done.wait(), 5)
    assert sent == [b"hello\n"]


async def test_writes_from_another_thread_keep_their_order():
    sent: list[bytes] = []
    batcher = ConsoleBatcher(asyncio.get_running_loop(), sent.append)
    data = bytes(range(256)) * 64
    writer = threading.Thread(target=lambda: [batcher.write(bytes((b,))) for b in data])
    writer.start()
    await asyncio.get_running_loop().run_in_executor(None, writer.join, 10)
    await asyncio.sleep(0.05)
    await _settle(batcher)
    assert b"".join(sent) == data
    assert len(sent) < len(data) // 16, "bytes are batched, not sent one by one"


async def test_large_backlogs_are_split_into_bounded_frames():
    sent: list[bytes] = []
    batcher = ConsoleBatcher(asyncio.get_running_loop(), sent.append)
    batcher.write(b"y" * (CHUNK_BYTES + 10))
    await _settle(batcher)
    assert [len(chunk) for chunk in sent] == [CHUNK_BYTES, 10]


async def test_output_beyond_the_limit_is_dropped_and_counted():
    sent: list[bytes] = []
    batcher = ConsoleBatcher(asyncio.get_running_loop(), sent.append, limit=100)
    batcher.write(b"a" * 90)
    batcher.write(b"b" * 20)
    await _settle(batcher)
    assert sent == [b"a" * 90]
    assert batcher.dropped == 20
