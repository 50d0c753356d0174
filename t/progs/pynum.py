"""pynum: Python 3 with numpy on OpenBLAS's threads and a sqlite3 database
open, driven through command files, checking itself after each restore.

usage: /usr/bin/python3 pynum.py DIR [delete|wal]

Sets up two 1024x1024 arrays of float64: A from a seeded generator and
B = A @ A (a multiply that large runs on OpenBLAS's thread pool, which
it starts, OPENBLAS_NUM_THREADS unset), and keeps the SHA-256 of both;
opens DIR/db.sqlite in the journal mode given (delete, the rollback
journal, by default; or wal) and commits one transaction of 10000 rows.
Says "ready PID" and then serves the command files DIR/cmd.1, DIR/cmd.2
... in order (polled every 10 ms; the test writes each whole, by rename),
answering each in DIR/ans.N (by rename):
- "check": A and B still hash as they did, A @ A computed again (on the
  restored thread pool) equals B, the process still has its OpenBLAS
  threads; then a write: one row more committed, and the table read
  back holds every row it should (10000, and one a check).  Answer:
  "ok rows R sum S threads T" (the same R and S whatever happened in
  between), or "bad: WHAT".
- "quit": prints "restored: yes" (this process started after "ready":
  a restored one is a new process) or "restored: no", then "pynum: ok"
  and exits 0, or exits 1 if a check failed (each one line on stderr).
"""
import hashlib
import os
import sqlite3
import sys
import time

import numpy as np

DIR = sys.argv[1]
MODE = sys.argv[2] if len(sys.argv) > 2 else "delete"
N = 1024
ROWS = 10000
failures = 0


def start_time():
    """When this process started (field 22 of /proc/self/stat)."""
    with open("/proc/self/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[19]


def digest(x):
    return hashlib.sha256(x.tobytes()).hexdigest()


def threads():
    return len(os.listdir("/proc/self/task"))


def answer(n, text):
    tmp = os.path.join(DIR, "ans.%d.tmp" % n)
    with open(tmp, "w") as f:
        f.write(text + "\n")
    os.rename(tmp, os.path.join(DIR, "ans.%d" % n))


STARTED = start_time()
A = np.random.default_rng(22).random((N, N))
B = A @ A
SUMS = (digest(A), digest(B))
THREADS = threads()
DB = sqlite3.connect(os.path.join(DIR, "db.sqlite"), isolation_level=None)
if DB.execute("PRAGMA journal_mode=" + MODE).fetchone()[0] != MODE:
    sys.exit("pynum: journal mode %s refused" % MODE)
DB.execute("CREATE TABLE t (round INTEGER, val INTEGER)")
DB.execute("BEGIN")
DB.executemany("INSERT INTO t VALUES (0, ?)", ((i,) for i in range(ROWS)))
DB.execute("COMMIT")
checks = 0


def check():
    """The checks of "check", then its write; the answer."""
    global checks
    if (digest(A), digest(B)) != SUMS:
        return "bad: the arrays changed"
    if not np.array_equal(A @ A, B):
        return "bad: A @ A differs from B"
    if threads() != THREADS:
        return "bad: %d threads, %d before" % (threads(), THREADS)
    checks += 1
    DB.execute("BEGIN")
    DB.execute("INSERT INTO t VALUES (?, ?)", (checks, checks * 1000))
    DB.execute("COMMIT")
    rows, total = DB.execute("SELECT count(*), sum(val) FROM t").fetchone()
    want = (ROWS + checks, ROWS * (ROWS - 1) // 2 + 1000 * checks * (checks + 1) // 2)
    if (rows, total) != want:
        return "bad: table holds %d rows summing to %d, not %d and %d" % (rows, total, *want)
    return "ok rows %d sum %d threads %d" % (rows, total, THREADS)


print("ready %d" % os.getpid(), flush=True)
n = 1
while True:
    path = os.path.join(DIR, "cmd.%d" % n)
    if not os.path.exists(path):
        time.sleep(0.01)
        continue
    with open(path) as f:
        cmd = f.read().strip()
    if cmd == "check":
        text = check()
    elif cmd == "quit":
        break
    else:
        text = "bad: no command %r" % cmd
    if text.startswith("bad"):
        failures += 1
        print("pynum: %s" % text, file=sys.stderr, flush=True)
    answer(n, text)
    n += 1

DB.close()
print("restored: %s" % ("yes" if start_time() != STARTED else "no"))
if failures:
    sys.exit(1)
print("pynum: ok")
