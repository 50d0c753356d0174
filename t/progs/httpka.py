"""httpka: an HTTP/1.1 keep-alive server and its client in one tree, caught
mid-response, that check their own work after a restore.

usage: python3 httpka.py DIR

The parent forks a child that serves http.server (protocol_version
HTTP/1.1) on 127.0.0.1, an ephemeral port, and writes the port to
DIR/port.  The parent's http.client connection makes three requests, then
sends a fourth and does not read its response (300 KB, more than the
window: the server is blocked writing it), says "ready PID" and waits for
DIR/go.  Then it reads that response and makes four more on the same
connection: each body is checked byte for byte, the server counts the
requests of its connection (X-Count) and the client's port stays the same.
One line per failed check on stderr; "httpka: ok" on stdout and exit 0
only if all was right (the server child's exit status too).
"""
import hashlib
import http.client
import http.server
import os
import sys
import time

BODY = 300_000
DIR = sys.argv[1]


def body(n):
    """The body of GET /n."""
    return (hashlib.sha256(str(n).encode()).digest() * (BODY // 32 + 1))[:BODY]


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    count = 0

    def do_GET(self):
        self.count += 1
        b = body(int(self.path[1:]))
        self.send_response(200)
        self.send_header("Content-Length", str(len(b)))
        self.send_header("X-Count", str(self.count))
        self.end_headers()
        self.wfile.write(b)

    def log_message(self, *args):
        pass


def serve():
    srv = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    with open(os.path.join(DIR, "port.tmp"), "w") as f:
        f.write(str(srv.server_address[1]))
    os.rename(os.path.join(DIR, "port.tmp"), os.path.join(DIR, "port"))
    # One connection, kept alive until the client closes it.
    srv.handle_request()
    os._exit(0)


failures = 0


def fail(msg):
    global failures
    failures += 1
    print("httpka: " + msg, file=sys.stderr, flush=True)


def check(resp, n):
    data = resp.read()
    if resp.status != 200:
        fail("GET /%d: status %d" % (n, resp.status))
    if data != body(n):
        fail("GET /%d: body of %d bytes differs" % (n, len(data)))
    if resp.getheader("X-Count") != str(n):
        fail("GET /%d: the server counts %s requests on this connection" % (n, resp.getheader("X-Count")))


def wait_file(name):
    while not os.path.exists(os.path.join(DIR, name)):
        time.sleep(0.01)


def main():
    kid = os.fork()
    if kid == 0:
        serve()
    wait_file("port")
    with open(os.path.join(DIR, "port")) as f:
        port = int(f.read())
    conn = http.client.HTTPConnection("127.0.0.1", port)
    for n in (1, 2, 3):
        conn.request("GET", "/%d" % n)
        check(conn.getresponse(), n)
    me = conn.sock.getsockname()
    conn.request("GET", "/4")
    print("ready %d" % os.getpid(), flush=True)
    wait_file("go")
    check(conn.getresponse(), 4)
    for n in (5, 6, 7, 8):
        conn.request("GET", "/%d" % n)
        check(conn.getresponse(), n)
    if conn.sock.getsockname() != me:
        fail("the connection's address changed: %s, not %s" % (conn.sock.getsockname(), me))
    conn.close()
    _, st = os.waitpid(kid, 0)
    if st:
        fail("the server exited with status %#x" % st)
    if failures:
        sys.exit(1)
    print("httpka: ok", flush=True)


main()
