#!/usr/bin/env python3
"""Misbehaving clients for demo-hardening, speaking the protocol raw.

  attacker.py flood PORT NICK SECONDS   send as fast as the socket takes,
                                        report what the server let through
  attacker.py stuck PORT NICK SECONDS   log in with a tiny receive buffer,
                                        never read, report when cut off
  attacker.py resume PORT NICK          log in again, report the replay
"""
import json
import socket
import sys
import threading
import time


def login(port, nick, rcvbuf=None):
    s = socket.socket()
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.connect(("127.0.0.1", port))
    frame = {"type": "login", "id": 0, "nick": nick, "password": "pw-" + nick}
    s.sendall((json.dumps(frame) + "\n").encode())
    return s


def lines(sock):
    buf = b""
    while True:
        try:
            data = sock.recv(65536)
        except OSError:
            return
        if not data:
            return
        buf += data
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            yield json.loads(line)


def flood(port, nick, seconds):
    s = login(port, nick)
    acked, error, start = [0], [None], time.time()

    def read():
        for frame in lines(s):
            if frame.get("type") == "ack":
                acked[0] += 1
            elif frame.get("type") == "error" and frame.get("code") == "flooding":
                error[0] = (time.time() - start, frame["reason"])

    threading.Thread(target=read, daemon=True).start()
    chunk = (json.dumps({"type": "message", "id": 1, "text": "FLOOD"}) + "\n").encode() * 100
    offered, offset = 0, 0
    while time.time() - start < seconds and error[0] is None:
        # Never blocks (the reader thread shares the socket): whatever the
        # socket takes now, then a millisecond's rest.
        try:
            offset += s.send(chunk[offset:], socket.MSG_DONTWAIT)
            if offset == len(chunk):
                offset, offered = 0, offered + 100
                continue
        except BlockingIOError:
            pass
        except OSError:
            break
        time.sleep(0.001)
    elapsed = time.time() - start
    time.sleep(0.5)
    print(f"flooder: offered {offered} messages in {elapsed:.1f} s, "
          f"the server let {acked[0]} through")
    if error[0]:
        print(f"flooder: disconnected after {error[0][0]:.1f} s: {error[0][1]}")


def stuck(port, nick, seconds):
    s = login(port, nick, rcvbuf=4096)
    # Read up to the welcome (byte by byte: nothing after it), so the demo
    # knows messages now reach this connection; then never read again.
    s.settimeout(30)
    line = b""
    while b"welcome" not in line:
        byte = s.recv(1)
        if not byte:
            print("stuck reader: the server closed the connection before the welcome")
            return
        line = b"" if byte == b"\n" else line + byte
    print("stuck reader: logged in, reading no more", flush=True)
    start = time.time()
    time.sleep(seconds)  # never read: the server's queue for us fills
    # Now look: was the connection cut?
    s.settimeout(2)
    got = 0
    try:
        while True:
            data = s.recv(65536)
            if not data:
                print(f"stuck reader: the server closed the connection "
                      f"({got} bytes were still waiting to be read)")
                return
            got += len(data)
    except (socket.timeout, ConnectionResetError):
        print("stuck reader: still connected")


def resume(port, nick):
    s = login(port, nick)
    for frame in lines(s):
        if frame.get("type") == "welcome":
            waiting = frame.get("replay", 0) + frame.get("replay_left", 0)
            print(f"stuck reader, logged in again: {waiting} messages waited for it")
            return


if __name__ == "__main__":
    cmd, port, nick = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    if cmd == "flood":
        flood(port, nick, float(sys.argv[4]))
    elif cmd == "stuck":
        stuck(port, nick, float(sys.argv[4]))
    else:
        resume(port, nick)
