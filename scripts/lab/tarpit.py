#!/usr/bin/env python3
"""airgap-lab tarpit: accept TCP connections and never answer.

Every accepted connection is held open in silence (whatever the client sends
is read and thrown away) and closed after --hold seconds, or earlier when the
client goes away. Only loopback addresses are accepted for --host.

    tarpit.py --host 127.0.0.251 --port 25 --port 443 --hold 120
"""

import argparse
import asyncio
import ipaddress
import signal
import sys
import time


def log(msg):
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
    print(f"{stamp} tarpit: {msg}", file=sys.stderr, flush=True)


async def swallow(reader):
    while await reader.read(4096):
        pass


async def handle(reader, writer, hold, limit, state):
    peer = writer.get_extra_info("peername")
    local = writer.get_extra_info("sockname")
    if state["active"] >= limit:
        log(f"limit of {limit} connections reached, closing {peer} at once")
        writer.close()
        return
    state["active"] += 1
    log(f"accepted {peer[0]}:{peer[1]} -> :{local[1]} (active {state['active']})")
    started = time.monotonic()
    try:
        await asyncio.wait_for(swallow(reader), timeout=hold)
        why = "client closed"
    except asyncio.TimeoutError:
        why = "hold time over"
    except (ConnectionError, OSError) as err:
        why = f"error: {err}"
    finally:
        state["active"] -= 1
        writer.close()
    log(f"closed {peer[0]}:{peer[1]} after {time.monotonic() - started:.1f}s ({why})")


async def main(args):
    state = {"active": 0}
    servers = []
    for port in args.port:
        server = await asyncio.start_server(
            lambda r, w: handle(r, w, args.hold, args.limit, state),
            host=args.host,
            port=port,
            reuse_address=True,
            backlog=128,
        )
        servers.append(server)
        log(f"listening on {args.host}:{port}, hold {args.hold}s")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    for server in servers:
        server.close()
    log("stopped")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, action="append", required=True)
    parser.add_argument("--hold", type=float, default=120.0)
    parser.add_argument("--limit", type=int, default=256, help="max open connections")
    parsed = parser.parse_args()
    if not ipaddress.ip_address(parsed.host).is_loopback:
        sys.exit(f"tarpit: refusing to listen on non-loopback address {parsed.host}")
    asyncio.run(main(parsed))
