#!/usr/bin/env python3
"""RSS of a chat-server after N new accounts log in, at the default
(OWASP) argon2 cost: docs/performance.md, "Memory after logins".

usage: scripts/rss_after_logins.py BINARY [N]

Starts BINARY on 127.0.0.1 (plaintext, a temporary data directory), logs
in N new accounts one after another, and prints VmRSS before, right
after, and 5 s later (idle). Linux only (/proc)."""

import json
import os
import socket
import subprocess
import sys
import tempfile
import time


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def login(port, nick):
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        frame = {"type": "login", "id": 1, "nick": nick, "password": "pw-" + nick}
        s.sendall((json.dumps(frame) + "\n").encode())
        reply = s.makefile().readline()
        if '"welcome"' not in reply:
            raise RuntimeError(f"{nick}: {reply}")


def main():
    binary = sys.argv[1]
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
    with tempfile.TemporaryDirectory() as data:
        server = subprocess.Popen(
            [binary, "--bind", "127.0.0.1:0", "--no-tls", "--data-dir", data,
             "--registrations-per-hour", "0", "--log-level", "warn"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            port = None
            for line in server.stdout:
                if "listening on" in line:
                    port = int(line.rsplit(":", 1)[1].split()[0])
                    break
            time.sleep(0.5)
            before = rss_kib(server.pid)
            started = time.time()
            for i in range(n):
                login(port, f"user{i}")
            took = time.time() - started
            after = rss_kib(server.pid)
            time.sleep(5)
            idle = rss_kib(server.pid)
            print(f"{n} logins in {took:.1f} s; RSS before {before / 1024:.1f} MiB, "
                  f"after {after / 1024:.1f} MiB, 5 s later {idle / 1024:.1f} MiB")
        finally:
            server.kill()
            server.wait()


if __name__ == "__main__":
    main()
