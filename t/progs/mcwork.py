"""mcwork: Debian's memcached (four worker threads, TCP and UDP) and
clients of it in one tree, caught mid-work, that check every answer
after a restore (or after a dump that left them running).

usage: /usr/bin/python3 mcwork.py DIR PORT

The parent starts memcached as its child on 127.0.0.1:PORT, TCP and UDP
(-A: the shutdown command), and writes 500 small keys (k:N = value-N)
and 128 of 64 KiB (big:N) through its text protocol.  Then, with one
connection each mid-work:
- A (TCP, the parent): a pipeline of 128 gets of the 64 KiB keys, unread
  (8 MiB of answers: the client's receive queue and the server's send
  queue full);
- B (TCP, the parent): the first half of a set (the command line and part
  of the data: memcached waits for the rest);
- C (TCP, a child): 200 incrs of cnt, unread;
- U (UDP, the child): a get of k:1 whose answer datagram waits unread.
Both say "ready PID" once the answers are queued and wait for DIR/go.
Then every answer is read and checked, the set finished.  The parent says
"restored: yes" (it started after "ready": a restored one is a new
process) or "restored: no", then "memcached: ok items N" if all was
right, and waits for DIR/stop to shut the server down and exit 0, or 1
if something was wrong: one line per failed check on stderr.  The TCP
connections end with a reset (realsrv.Stream.abort).
"""
import os
import socket
import struct
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in t/progs
import realsrv  # noqa: E402 (t/progs/realsrv.py)
from realsrv import fail, short, wait_file  # noqa: E402

DIR = sys.argv[1]
PORT = int(sys.argv[2])
NSMALL, NBIG, BIG, NINCR = 500, 128, 65536, 200
HALF = b"a value sent in two pieces"


def big(n):
    """The value of big:N."""
    return realsrv.big(n, BIG)


def setcmd(key, value):
    return b"set %s 0 0 %d\r\n%s\r\n" % (key.encode(), len(value), value)


class Conn(realsrv.Stream):
    def __init__(self):
        super().__init__(port=PORT)

    def value(self, key):
        """The answer to "get KEY": its value, or None."""
        ln = self.line()
        if ln == b"END":
            return None
        f = ln.split()
        if len(f) != 4 or f[0] != b"VALUE" or f[1] != key.encode():
            fail("get %s: %s" % (key, short(ln)))
            return None
        data = self.take(int(f[3]))
        end = self.line()
        if end != b"END":
            fail("get %s: %s after the value, not END" % (key, short(end)))
        return data

    def expect(self, what, want):
        got = self.line()
        if got != want:
            fail("%s: %s, not %r" % (what, short(got), want))


def up():
    c = Conn()
    c.send(b"version\r\n")
    return c if c.line().startswith(b"VERSION ") else None


def udp_get(u, rid, key):
    """Ask for KEY over UDP (frame header: request id, sequence 0, one
    datagram)."""
    u.sendto(struct.pack("!HHHH", rid, 0, 1, 0) + b"get %s\r\n" % key.encode(),
             ("127.0.0.1", PORT))


def udp_check(u, rid, key, want):
    d = u.recv(65536)
    hdr, body = d[:8], d[8:]
    if struct.unpack("!HHHH", hdr) != (rid, 0, 1, 0):
        fail("UDP answer %d: header %r" % (rid, hdr))
    exp = b"VALUE %s 0 %d\r\n%s\r\nEND\r\n" % (key.encode(), len(want), want)
    if body != exp:
        fail("UDP answer %d: %s, not %r" % (rid, short(body), exp))


def child_client():
    c = Conn()
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    c.send(b"incr cnt 1\r\n" * NINCR)
    udp_get(u, 7, "k:1")
    c.wait_queued("C (TCP)")
    for _ in range(1000):
        if realsrv.queued(u) > 0:
            break
        time.sleep(0.01)
    else:
        fail("no answer queued on U (UDP)")
    realsrv.touch(DIR, "child.ready", "%d\n" % os.getpid())
    wait_file(DIR, "go")
    for n in range(NINCR):
        c.expect("incr %d" % (n + 1), b"%d" % (n + 1))
    udp_check(u, 7, "k:1", b"value-1")
    udp_get(u, 8, "k:2")
    udp_check(u, 8, "k:2", b"value-2")
    c.abort()
    sys.exit(1 if realsrv.failures else 0)


def main():
    started = realsrv.start_time()
    argv = ["memcached", "-l", "127.0.0.1", "-p", str(PORT), "-U", str(PORT),
            "-t", "4", "-m", "64", "-c", "64", "-A"]
    if os.geteuid() == 0:
        argv += ["-u", "root"]
    srv, a = realsrv.start_server(argv, DIR, up)
    stats = {}

    def stat(name):
        a.send(b"stats\r\n")
        while True:
            ln = a.line()
            if ln == b"END":
                return stats.get(name)
            f = ln.split()
            stats[f[1].decode()] = f[2].decode()

    pid = stat("pid")
    a.send(b"".join(setcmd("k:%d" % n, b"value-%d" % n) for n in range(NSMALL)) +
           b"".join(setcmd("big:%d" % n, big(n)) for n in range(NBIG)) + setcmd("cnt", b"0"))
    for n in range(NSMALL + NBIG + 1):
        a.expect("set %d" % n, b"STORED")
    kid = os.fork()
    if kid == 0:
        a.s.close()
        child_client()
    b = Conn()
    a.send(b"".join(b"get big:%d\r\n" % n for n in range(NBIG)))
    half = setcmd("half", HALF)
    b.send(half[:len(half) - 15])
    a.wait_queued("A (TCP)")
    wait_file(DIR, "child.ready")
    print("ready %d" % os.getpid(), flush=True)
    wait_file(DIR, "go")
    for n in range(NBIG):
        if a.value("big:%d" % n) != big(n):
            fail("get big:%d differs" % n)
    b.send(half[len(half) - 15:])
    b.expect("the set sent in two pieces", b"STORED")
    b.send(b"get half\r\n")
    if b.value("half") != HALF:
        fail("get half differs")
    for n in range(0, NSMALL, 37):
        b.send(b"get k:%d\r\n" % n)
        if b.value("k:%d" % n) != b"value-%d" % n:
            fail("get k:%d differs" % n)
    _, st = os.waitpid(kid, 0)
    if st:
        fail("the second client exited with status %#x" % st)
    b.send(b"get cnt\r\n")
    if b.value("cnt") != b"%d" % NINCR:
        fail("cnt is not %d" % NINCR)
    items = stat("curr_items")
    if items != str(NSMALL + NBIG + 2) or stat("pid") != pid:
        fail("stats: %s items, not %d; pid %s, was %s" % (items, NSMALL + NBIG + 2, stats["pid"], pid))
    b.abort()
    print("restored: %s" % ("yes" if realsrv.start_time() != started else "no"), flush=True)
    if not realsrv.failures:
        print("memcached: ok items %s" % items, flush=True)
    wait_file(DIR, "stop")
    try:
        a.send(b"shutdown\r\n")
        a.line()
    except (OSError, EOFError):
        pass
    a.abort()
    st = srv.wait()
    if st:
        fail("memcached exited with status %d" % st)
    sys.exit(1 if realsrv.failures else 0)


main()
