"""Right after a flood: one client searches while another pings every 10 ms.

Prints how long the search took and the bystander's slowest ping (used by
demo-performance). Indexing the flood inside the search used to hold every
client: ~0.5 s after this demo's 3-second flood, 2 s after a 5-second one;
now a search indexes one step itself.

    python3 search_under_flood.py PORT
"""
import json
import socket
import sys
import threading
import time

PORT = int(sys.argv[1])


def login(nick):
    f = socket.create_connection(("127.0.0.1", PORT)).makefile("rwb")
    send(f, {"type": "login", "id": 1, "nick": nick, "password": "demo"})
    while json.loads(f.readline()).get("type") != "welcome":
        pass
    return f


def send(f, frame):
    f.write(json.dumps(frame).encode() + b"\n")
    f.flush()


def ask(f, frame):
    """Sends `frame`; returns its answer and the seconds it took."""
    started = time.monotonic()
    send(f, frame)
    while True:
        answer = json.loads(f.readline())
        if answer.get("id") == frame["id"]:
            return answer, time.monotonic() - started


worst, done = [0.0], threading.Event()


def pings():
    f = login("bystander")
    n = 10
    while not done.is_set():
        worst[0] = max(worst[0], ask(f, {"type": "ping", "id": n})[1])
        n += 1
        time.sleep(0.01)


pinger = threading.Thread(target=pings)
pinger.start()
time.sleep(0.3)
searcher = login("searcher")
answer, took = ask(searcher, {"type": "search", "id": 5, "words": "zebra"})
time.sleep(0.3)
done.set()
pinger.join()
print(
    f"search answered ({answer['type']}) in {took * 1000:.0f} ms; "
    f"the bystander's slowest ping {worst[0] * 1000:.0f} ms"
)

# The index goes oldest first: a message sent now is found once the flood
# before it is indexed.
ask(searcher, {"type": "message", "id": 6, "text": "quagga sighted", "cid": "q1"})
started, n = time.monotonic(), 7
while time.monotonic() - started < 30:
    found, _ = ask(searcher, {"type": "search", "id": n, "words": "quagga"})
    if found.get("messages"):
        print(f"a message sent after the flood was found after {time.monotonic() - started:.1f} s")
        break
    n += 1
    time.sleep(0.2)
else:
    print("a message sent after the flood was not found within 30 s")
