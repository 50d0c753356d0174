"""manyfds: more open fds than a default soft RLIMIT_NOFILE, checked after a restore.

usage: python3 manyfds.py N DIR

Raises its soft RLIMIT_NOFILE to the hard limit, then opens N fds in
fours: a pipe holding 4 bytes (both ends), DIR/data open at an offset of
its own, an eventfd whose counter is its index.  Prints "ready PID", polls
for DIR/go every 10 ms, then checks every fd: the pipe gives back its
bytes, the file reads at its offset, the eventfd counts its index.  One
line per failed check on stderr, "manyfds: ok" on stdout and exit 0 only
if all were right.
"""
import os
import resource
import sys
import time


def main():
    n, d = int(sys.argv[1]), sys.argv[2]
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    data = bytes(range(256)) * 16
    with open(os.path.join(d, "data"), "wb") as f:
        f.write(data)
    fds = []
    for i in range(n // 4):
        r, w = os.pipe()
        os.write(w, i.to_bytes(4, "little"))
        f = os.open(os.path.join(d, "data"), os.O_RDONLY)
        os.lseek(f, i % len(data), os.SEEK_SET)
        fds.append((i, r, w, f, os.eventfd(i + 1)))
    print("ready", os.getpid(), flush=True)
    while not os.path.exists(os.path.join(d, "go")):
        time.sleep(0.01)
    bad = 0
    for i, r, w, f, e in fds:
        for what, ok in (
            ("pipe", os.read(r, 4) == i.to_bytes(4, "little")),
            ("file", os.read(f, 1) == data[i % len(data):i % len(data) + 1]),
            ("eventfd", os.eventfd_read(e) == i + 1),
        ):
            if not ok:
                print(f"manyfds: set {i}: the {what} differs", file=sys.stderr)
                bad += 1
    if bad == 0:
        print("manyfds: ok", flush=True)
    sys.exit(1 if bad else 0)


main()
