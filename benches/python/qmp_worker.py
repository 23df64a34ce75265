"""QMP timings of Python's qemu.qmp in one interpreter, for benches/qmp.rs.

Usage: qmp_worker.py SOCKET. Requests on stdin, one per line, each answered by one line:
  hello          -> ok
  whole qmp N    -> N times in ns of a whole operation (connect, greeting,
                    qmp_capabilities, query-status, disconnect)
  open qmp N     -> connect once (untimed), N times in ns of one query-status
  quit
"""

import asyncio
import sys
import time

from qemu.qmp import QMPClient


async def whole(path, n):
    times = []
    for _ in range(n):
        start = time.perf_counter_ns()
        qmp = QMPClient("bench")
        await qmp.connect(path)
        reply = await qmp.execute("query-status")
        await qmp.disconnect()
        times.append(time.perf_counter_ns() - start)
        assert "status" in reply, reply
    return times


async def open_connection(path, n):
    qmp = QMPClient("bench")
    await qmp.connect(path)
    times = []
    for _ in range(n):
        start = time.perf_counter_ns()
        reply = await qmp.execute("query-status")
        times.append(time.perf_counter_ns() - start)
        assert "status" in reply, reply
    await qmp.disconnect()
    return times


async def main(path):
    ops = {"whole qmp": whole, "open qmp": open_connection}
    for line in sys.stdin:
        words = line.split()
        if words == ["quit"]:
            break
        if words == ["hello"]:
            answer = "ok"
        else:
            try:
                op = ops[" ".join(words[:2])]
                answer = " ".join(str(t) for t in await op(path, int(words[2])))
            except Exception as e:  # reported to the bench, which stops
                answer = "error: %r" % (e,)
        print(answer, flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
