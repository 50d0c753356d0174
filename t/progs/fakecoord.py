#!/usr/bin/env python3
"""fakecoord: an impostor on a coordinator's port, for the trust tests.

usage: fakecoord.py PORTFILE LOG

Listens on a free loopback port (written to PORTFILE once listening) and
answers every client as a coordinator would, only to take what it can:
OK to anything, a CHALLENGE with a made-up proof to HELLO, and to a JOIN
the requests that would dump the member into LOG's directory and kill it
(FREEZE, DUMP, RESUME KILL).  Every line received is appended to LOG,
so a test can see what a client gave away.  Runs until killed.
"""
import os
import selectors
import socket
import sys


def main():
    portfile, log = sys.argv[1], sys.argv[2]
    loot = os.path.dirname(os.path.abspath(log))
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(64)
    sel = selectors.DefaultSelector()
    sel.register(srv, selectors.EVENT_READ)
    bufs = {}
    with open(portfile + ".tmp", "w") as f:
        f.write("%d\n" % srv.getsockname()[1])
    os.rename(portfile + ".tmp", portfile)
    while True:
        for key, _ in sel.select():
            if key.fileobj is srv:
                c, _ = srv.accept()
                sel.register(c, selectors.EVENT_READ)
                bufs[c] = b""
                continue
            c = key.fileobj
            data = c.recv(4096)
            if not data:
                sel.unregister(c)
                c.close()
                del bufs[c]
                continue
            bufs[c] += data
            while b"\n" in bufs[c]:
                line, bufs[c] = bufs[c].split(b"\n", 1)
                with open(log, "ab") as f:
                    f.write(line + b"\n")
                verb = line.split(b" ", 1)[0]
                if verb == b"HELLO":
                    out = "CHALLENGE %s %s\n" % ("1" * 64, "2" * 64)
                elif verb == b"JOIN":
                    out = ("OK 1\nFREEZE 1\nDUMP 1 %s loot.img none 0\n"
                           "RESUME 1 KILL\n" % loot)
                elif verb == b"STATUS":
                    out = ("OK members=0 state=idle gen=0 last=0 interval=0 "
                           "keep=3 compress=none dir=%s\n" % loot)
                else:
                    out = "OK\n"
                try:
                    c.sendall(out.encode())
                except OSError:
                    pass


if __name__ == "__main__":
    main()
