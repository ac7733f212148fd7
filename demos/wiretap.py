"""A recording TCP proxy for demo-encryption: listens on 127.0.0.1 (free
port, printed on stdout), forwards to 127.0.0.1:PORT, and appends every
byte that passes, in both directions, to a file."""
import socket
import sys
import threading

target_port, record = int(sys.argv[1]), sys.argv[2]
lock = threading.Lock()


def pump(src, dst, out):
    try:
        while data := src.recv(65536):
            with lock:
                out.write(data)
                out.flush()
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


listener = socket.create_server(("127.0.0.1", 0))
print(listener.getsockname()[1], flush=True)
with open(record, "ab") as out:
    while True:
        client, _ = listener.accept()
        server = socket.create_connection(("127.0.0.1", target_port))
        for a, b in ((client, server), (server, client)):
            threading.Thread(target=pump, args=(a, b, out), daemon=True).start()
