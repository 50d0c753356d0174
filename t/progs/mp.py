"""A multiprocessing pool of two workers (forked) that a checkpoint
interrupts: each task's answer is checked against the formula, and the
program prints "ok python" only if every answer came back right.  It
writes DIR/ready once ten answers are in."""
import multiprocessing
import os
import sys
import time


def work(i):
    s = sum(range(i * 1000))
    time.sleep(0.05)
    return (os.getppid() == PARENT, s)


PARENT = os.getpid()

if __name__ == "__main__":
    d = sys.argv[1]
    multiprocessing.set_start_method("fork")
    answers = []
    with multiprocessing.Pool(2) as pool:
        for i, a in enumerate(pool.imap(work, range(60))):
            answers.append(a)
            if i == 10:
                with open(os.path.join(d, "ready"), "w") as f:
                    f.write("1\n")
    want = [(True, i * 1000 * (i * 1000 - 1) // 2) for i in range(60)]
    if answers == want and os.getpid() == PARENT:
        print("ok python")
    else:
        print("bad answers: %r" % [(i, a) for i, a in enumerate(answers) if a != want[i]])
        sys.exit(1)
