"""A small HTTP load generator, for machines without `wrk`: keep-alive connections, each
sending requests one after another for a while; prints one JSON line with the results.

    python -m bench.loadgen --url http://127.0.0.1:8000/tasks --method POST \\
        --body '{"text": "hi", "a": 1, "b": 2}' --connections 16 --seconds 5
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from urllib.parse import urlsplit


async def _client(
    host: str, port: int, request: bytes, deadline: float, latencies: list[float]
) -> int:
    reader, writer = await asyncio.open_connection(host, port)
    errors = 0
    try:
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            writer.write(request)
            await writer.drain()
            status_line = await reader.readline()
            length = 0
            while True:
                line = await reader.readline()
                if line in (b"\r\n", b""):
                    break
                name, _, value = line.decode("latin-1").partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value)
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - started)
            if not status_line.split(b" ")[1].startswith(b"2"):
                errors += 1
    finally:
        writer.close()
    return errors


async def _run(
    url: str, method: str, body: str | None, connections: int, seconds: float
) -> dict[str, float]:
    parts = urlsplit(url)
    payload = body.encode() if body else b""
    request = (
        f"{method} {parts.path or '/'}{'?' + parts.query if parts.query else ''} HTTP/1.1\r\n"
        f"Host: {parts.hostname}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(payload)}\r\n\r\n"
    ).encode() + payload
    latencies: list[float] = []
    started = time.perf_counter()
    deadline = started + seconds
    errors = await asyncio.gather(
        *(
            _client(parts.hostname or "127.0.0.1", parts.port or 80, request, deadline, latencies)
            for _ in range(connections)
        )
    )
    elapsed = time.perf_counter() - started
    latencies.sort()

    def at(fraction: float) -> float:
        return latencies[min(len(latencies) - 1, int(fraction * len(latencies)))] * 1000

    return {
        "requests": len(latencies),
        "seconds": elapsed,
        "rps": len(latencies) / elapsed,
        "p50_ms": at(0.5),
        "p99_ms": at(0.99),
        "errors": sum(errors),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--method", default="GET")
    parser.add_argument("--body")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=5)
    args = parser.parse_args()
    result = asyncio.run(_run(args.url, args.method, args.body, args.connections, args.seconds))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
