"""rediswork: Debian's redis-server and clients of it in one tree, caught
mid-work, that check every answer after a restore (or after a dump that
left them running).

usage: /usr/bin/python3 rediswork.py DIR PORT

The parent starts redis-server as its child: on 127.0.0.1:PORT and on the
unix socket DIR/redis.sock, no persistence (--save '' --appendonly no), in
the foreground.  If it does not answer PING within 10 s: "cannot start
redis-server: ..." on stdout and exit 77.  Otherwise the parent writes
1000 small keys (k:N = value-N) and 128 of 64 KiB (big:N) over TCP, forks
a second client, and keeps two connections open of its own:
- A (TCP): a pipeline of 128 GETs of the 64 KiB keys, unread (8 MiB of
  answers: the client's receive queue and the server's send queue full);
- B (unix socket): 300 INCRs of cnt, unread, then the first half of a SET
  (redis holds it in its query buffer);
the child client has two connections too:
- C (TCP): SUBSCRIBE news, and three messages published to it, unread;
- D (unix socket): MULTI, SET t1, INCR t2, queued (not yet EXEC).
Both say "ready PID" once the answers are queued and wait for DIR/go.
Then every answer is read and checked, the SET finished, EXEC run, three
more messages published to news and all six received by C, and the server's run_id is
the one of before.  The parent says "restored: yes" (this process started
after "ready": a restored one is a new process) or "restored: no", then
"redis: ok dbsize N" if all was right, and waits for DIR/stop to shut the
server down (SHUTDOWN NOSAVE) and exit 0, or 1 if something was wrong:
one line per failed check on stderr.  The TCP connections end with a
reset (realsrv.Stream.abort): an image taken before can be restored at
once.
"""
import os
import sys

sys.dont_write_bytecode = True  # no __pycache__ in t/progs
import realsrv  # noqa: E402 (t/progs/realsrv.py)
from realsrv import fail, short, wait_file  # noqa: E402

DIR = sys.argv[1]
PORT = int(sys.argv[2])
SOCK = os.path.join(DIR, "redis.sock")
NSMALL, NBIG, BIG, NINCR = 1000, 128, 65536, 300


def big(n):
    """The value of big:N."""
    return realsrv.big(n, BIG)


def cmd(*args):
    """One request in RESP."""
    out = b"*%d\r\n" % len(args)
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    return out


class Conn(realsrv.Stream):
    def __init__(self, tcp):
        super().__init__(port=PORT) if tcp else super().__init__(path=SOCK)

    def reply(self):
        """The next answer: bytes, int, list, None, or ("error", text)."""
        ln = self.line()
        t, rest = ln[:1], ln[1:]
        if t == b"+":
            return rest
        if t == b"-":
            return ("error", rest)
        if t == b":":
            return int(rest)
        if t == b"$":
            return None if int(rest) < 0 else self.take(int(rest))
        if t == b"*":
            n = int(rest)
            return None if n < 0 else [self.reply() for _ in range(n)]
        raise ValueError("not RESP: %r" % ln[:40])

    def call(self, *args):
        self.send(cmd(*args))
        return self.reply()

    def expect(self, what, want):
        got = self.reply()
        if got != want:
            fail("%s: %s, not %r" % (what, short(got), want))


def up():
    c = Conn(True)
    if c.call("PING") == b"PONG" and os.path.exists(SOCK):
        return c
    return None


def start_server():
    return realsrv.start_server(
        ["redis-server", "--port", str(PORT), "--bind", "127.0.0.1",
         "--unixsocket", SOCK, "--unixsocketperm", "700",
         "--save", "", "--appendonly", "no", "--daemonize", "no",
         "--dir", DIR, "--logfile", os.path.join(DIR, "redis.log")],
        DIR, up, os.path.join(DIR, "redis.log"))


def child_client(parent_conn):
    parent_conn.s.close()
    c = Conn(True)
    d = Conn(False)
    c.send(cmd("SUBSCRIBE", "news"))
    c.expect("SUBSCRIBE", [b"subscribe", b"news", 1])
    d.send(cmd("MULTI") + cmd("SET", "t1", "one") + cmd("INCR", "t2"))
    d.expect("MULTI", b"OK")
    d.expect("SET in MULTI", b"QUEUED")
    d.expect("INCR in MULTI", b"QUEUED")
    # The parent publishes once both clients are set up.
    realsrv.touch(DIR, "child.ready", "%d\n" % os.getpid())
    wait_file(DIR, "go")
    for m in [b"early0", b"early1", b"early2", b"m0", b"m1", b"m2"]:
        c.expect("message %s" % m.decode(), [b"message", b"news", m])
    d.send(cmd("EXEC"))
    d.expect("EXEC", [b"OK", 1])
    if d.call("GET", "t1") != b"one":
        fail("t1 is not one after EXEC")
    c.abort()
    sys.exit(1 if realsrv.failures else 0)


def main():
    started = realsrv.start_time()
    srv, a = start_server()
    run_id = [ln for ln in a.call("INFO", "server").split(b"\r\n") if ln.startswith(b"run_id:")]
    # The keys.
    req = b"".join(cmd("SET", "k:%d" % n, "value-%d" % n) for n in range(NSMALL))
    req += b"".join(cmd("SET", "big:%d" % n, big(n)) for n in range(NBIG))
    a.send(req)
    for n in range(NSMALL + NBIG):
        a.expect("SET %d" % n, b"OK")
    kid = os.fork()
    if kid == 0:
        child_client(a)
    b = Conn(False)
    wait_file(DIR, "child.ready")
    # Messages for the subscriber, unread until after the restore.
    for n in range(3):
        rcv = a.call("PUBLISH", "news", "early%d" % n)
        if rcv != 1:
            fail("PUBLISH early%d reached %r subscribers, not 1" % (n, rcv))
    # A: 8 MiB of answers, unread.
    a.send(b"".join(cmd("GET", "big:%d" % n) for n in range(NBIG)))
    # B: 300 INCRs, unread, and half a SET.
    b.send(b"".join(cmd("INCR", "cnt") for _ in range(NINCR)))
    half = cmd("SET", "half", "a value sent in two pieces")
    b.send(half[:len(half) // 2])
    a.wait_queued("A (TCP)")
    b.wait_queued("B (unix)")
    print("ready %d" % os.getpid(), flush=True)
    wait_file(DIR, "go")
    for n in range(NBIG):
        got = a.reply()
        if got != big(n):
            fail("GET big:%d: %d bytes that differ" % (n, len(got) if isinstance(got, bytes) else -1))
    for n in range(NINCR):
        b.expect("INCR %d" % (n + 1), n + 1)
    b.send(half[len(half) // 2:])
    b.expect("the SET sent in two pieces", b"OK")
    if b.call("GET", "half") != b"a value sent in two pieces":
        fail("GET half differs")
    for n in range(3):
        rcv = a.call("PUBLISH", "news", "m%d" % n)
        if rcv != 1:
            fail("PUBLISH m%d reached %r subscribers, not 1" % (n, rcv))
    for n in range(0, NSMALL, 37):
        if b.call("GET", "k:%d" % n) != b"value-%d" % n:
            fail("GET k:%d differs" % n)
    now = [ln for ln in a.call("INFO", "server").split(b"\r\n") if ln.startswith(b"run_id:")]
    if now != run_id:
        fail("run_id %r, not %r: another server" % (now, run_id))
    _, st = os.waitpid(kid, 0)
    if st:
        fail("the second client exited with status %#x" % st)
    dbsize = a.call("DBSIZE")
    want = NSMALL + NBIG + 4  # cnt, half, t1, t2
    if dbsize != want:
        fail("DBSIZE %r, not %d" % (dbsize, want))
    print("restored: %s" % ("yes" if realsrv.start_time() != started else "no"), flush=True)
    if not realsrv.failures:
        print("redis: ok dbsize %d" % dbsize, flush=True)
    wait_file(DIR, "stop")
    try:
        a.call("SHUTDOWN", "NOSAVE")
    except (OSError, EOFError):
        pass
    a.abort()
    st = srv.wait()
    if st:
        fail("redis-server exited with status %d" % st)
    sys.exit(1 if realsrv.failures else 0)


main()
