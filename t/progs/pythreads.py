"""pythreads: Python threads that check their own work after a restore.

usage: python3 pythreads.py DIR

Four threading.Thread workers sum squares, a round of 20000 terms at a
time, each round's result kept in the worker's list; a producer thread puts
0, 1, 2, ... into a queue.Queue of 64 items that a consumer thread takes them
from, checking their order.  All of them run until the main thread, which
polls every 10 ms, finds DIR/go: so a dump catches them working, holding
or waiting for the GIL and the queue's locks.  Then the workers stop, the
producer puts a last None, main joins every thread and compares each
round with the closed form and the consumer's count and sum with the
producer's.  One line per failed check on stderr, then "restored: yes" (the
process started after "ready": a restored one is a new process, whatever
its pid) or "restored: no" on stdout; exit 0 only if all was right.
"""
import os
import queue
import sys
import threading
import time

ROUND = 20000
WORKERS = 4


def started():
    """Field 22 of /proc/self/stat, when the process started."""
    with open("/proc/self/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[19]


def squares_below(n):
    """Sum of i*i for i < n, in closed form."""
    return (n - 1) * n * (2 * n - 1) // 6


class Worker(threading.Thread):
    def __init__(self, k, stop):
        super().__init__(name=f"squares-{k}")
        self.k = k
        self.stop = stop
        self.rounds = []

    def run(self):
        r = 0
        while not self.stop.is_set():
            lo = (self.k * 1000003 + r) * ROUND
            s = 0
            for i in range(lo, lo + ROUND):
                s += i * i
            self.rounds.append((lo, s))
            r += 1


class Producer(threading.Thread):
    def __init__(self, q, stop):
        super().__init__(name="producer")
        self.q = q
        self.stop = stop
        self.count = 0

    def run(self):
        while not self.stop.is_set():
            self.q.put(self.count)
            self.count += 1
        self.q.put(None)


class Consumer(threading.Thread):
    def __init__(self, q):
        super().__init__(name="consumer")
        self.q = q
        self.count = 0
        self.total = 0
        self.errors = []

    def run(self):
        while True:
            item = self.q.get()
            if item is None:
                return
            if item != self.count and len(self.errors) < 5:
                self.errors.append(f"consumer: got {item}, expected {self.count}")
            self.count += 1
            self.total += item


def main():
    if len(sys.argv) != 2:
        print("usage: python3 pythreads.py DIR", file=sys.stderr)
        return 2
    go = os.path.join(sys.argv[1], "go")
    stop = threading.Event()
    q = queue.Queue(maxsize=64)
    workers = [Worker(k, stop) for k in range(WORKERS)]
    producer, consumer = Producer(q, stop), Consumer(q)
    threads = workers + [producer, consumer]
    for t in threads:
        t.start()
    # Every worker has a round done before "ready": all are running.
    while not all(w.rounds for w in workers) or producer.count < 100:
        time.sleep(0.01)
    start = started()
    # One write: print() writes its pieces one by one when unbuffered
    # (PYTHONUNBUFFERED), and a dump could come between them.
    os.write(1, b"ready %d\n" % os.getpid())

    while not os.path.exists(go):
        time.sleep(0.01)
    stop.set()
    for t in threads:
        t.join(60)

    errors = []
    for t in threads:
        if t.is_alive():
            errors.append(f"{t.name}: still running 60 s after go")
    for w in workers:
        if not w.rounds:
            errors.append(f"{w.name}: no round done")
        for lo, s in w.rounds:
            if s != squares_below(lo + ROUND) - squares_below(lo):
                errors.append(f"{w.name}: round from {lo} summed to {s}")
                break
        want = [(w.k * 1000003 + r) * ROUND for r in range(len(w.rounds))]
        if [lo for lo, _ in w.rounds] != want:
            errors.append(f"{w.name}: rounds are not consecutive")
    errors += consumer.errors
    if consumer.count != producer.count:
        errors.append(f"consumer: took {consumer.count} items, producer put {producer.count}")
    if consumer.total != producer.count * (producer.count - 1) // 2:
        errors.append(f"consumer: items sum to {consumer.total}")
    for e in errors:
        print("pythreads:", e, file=sys.stderr)
    os.write(1, b"restored: %s\n" % (b"yes" if started() != start else b"no"))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
