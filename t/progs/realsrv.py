"""realsrv: what the drivers of real servers (rediswork.py, mcwork.py)
share: a count of failed checks, a buffered stream connection, waiting
for a file of the test, and starting the server as a child."""
import fcntl
import hashlib
import os
import socket
import struct
import subprocess
import sys
import time

failures = 0


def fail(msg):
    """One failed check, one line on stderr."""
    global failures
    failures += 1
    print("%s %d: %s" % (os.path.basename(sys.argv[0]), os.getpid(), msg), file=sys.stderr, flush=True)


def short(v):
    r = repr(v)
    return r if len(r) < 80 else r[:80] + "..."


def start_time():
    """This process's start time (a restored process is a new one)."""
    with open("/proc/self/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[19]


def big(n, size):
    """SIZE bytes that depend on N."""
    return (hashlib.sha256(b"big%d" % n).digest() * (size // 32 + 1))[:size]


def queued(s):
    """Bytes in the receive queue of socket s (FIONREAD)."""
    return struct.unpack("i", fcntl.ioctl(s, 0x541B, b"\0\0\0\0"))[0]


class Stream:
    """A stream connection to 127.0.0.1:port, or to the unix socket
    path, read through a buffer."""

    def __init__(self, port=None, path=None):
        if path is None:
            self.s = socket.create_connection(("127.0.0.1", port))
        else:
            self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.s.connect(path)
        self.buf = b""

    def send(self, data):
        self.s.sendall(data)

    def fill(self):
        more = self.s.recv(1 << 20)
        if not more:
            raise EOFError("the server closed the connection")
        self.buf += more

    def line(self):
        while b"\r\n" not in self.buf:
            self.fill()
        ln, self.buf = self.buf.split(b"\r\n", 1)
        return ln

    def take(self, n):
        """n bytes, then the CRLF after them."""
        while len(self.buf) < n + 2:
            self.fill()
        data, self.buf = self.buf[:n], self.buf[n + 2:]
        return data

    def wait_queued(self, what):
        for _ in range(1000):
            if queued(self.s) > 0:
                return
            time.sleep(0.01)
        fail("no answer queued on %s" % what)

    def abort(self):
        """Close with a reset (SO_LINGER 0): no TIME_WAIT keeps the
        connection's addresses, which a restore of an image taken
        before has to make again at once (connect(2) refuses the
        addresses of a connection in TIME_WAIT for a second at least)."""
        self.s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.s.close()


def wait_file(d, name):
    while not os.path.exists(os.path.join(d, name)):
        time.sleep(0.01)


def touch(d, name, text):
    """d/name with text in it, whole at once (made aside and renamed)."""
    with open(os.path.join(d, name + ".tmp"), "w") as f:
        f.write(text)
    os.rename(os.path.join(d, name + ".tmp"), os.path.join(d, name))


def start_server(argv, d, up, log=None):
    """argv as a child in directory d, its pid in d/server.pid; up() is
    what it answers when it is up (a connection, or None).  Where it does
    not within 10 s: "cannot start ARGV0 ..." on stdout and exit 77."""
    srv = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, close_fds=True, cwd=d)
    touch(d, "server.pid", "%d\n" % srv.pid)
    why = "no answer in 10 s"
    for _ in range(1000):
        if srv.poll() is not None:
            why = "it exited with status %d" % srv.returncode
            break
        try:
            c = up()
            if c is not None:
                return srv, c
        except (OSError, EOFError):
            pass
        time.sleep(0.01)
    if log:
        try:
            with open(log) as f:
                why += "; log: " + " | ".join(f.read().splitlines()[-2:])
        except OSError:
            pass
    srv.kill()
    srv.wait()
    print("cannot start %s: %s" % (" ".join(argv), why), flush=True)
    sys.exit(77)
