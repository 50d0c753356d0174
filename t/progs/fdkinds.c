/* fdkinds: a process holding a pipe with data in it, an empty
 * non-blocking pipe, an eventfd, a signalfd with a signal waiting, a
 * timerfd ticking, and an epoll instance watching some of them, plus a
 * thread blocked in read() on a pipe and one in epoll_wait().  After a
 * restore it checks each one and exits 0 only if all are intact.
 *
 * usage: fdkinds DIR
 * Prints "ready PID", waits for DIR/go, checks, prints "fdkinds: ok". */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define PROG "fdkinds"
#include "progs.h"

#define DATA (100 * 1024)

static int full[2], empty[2], blocked[2], efd, efd2, sfd, tfd, ep, ep2;
static unsigned char pattern[DATA];
static char reader_got[16];
static int waiter_events;

/* Blocked in read() at the checkpoint; the main thread writes after. */
static void *reader(void *arg)
{
	(void)arg;
	if (read(blocked[0], reader_got, sizeof(reader_got) - 1) < 0)
		fail("read on the blocked pipe: %s", strerror(errno));
	return NULL;
}

/* Blocked in epoll_wait() at the checkpoint. */
static void *waiter(void *arg)
{
	struct epoll_event ev;

	(void)arg;
	waiter_events = epoll_wait(ep2, &ev, 1, -1);
	if (waiter_events != 1 || ev.data.u64 != 0xfeed)
		fail("epoll_wait in the waiting thread: %d events, data %#llx", waiter_events,
		     (unsigned long long)ev.data.u64);
	return NULL;
}

int main(int argc, char **argv)
{
	struct timespec ts = {0, 10 * 1000 * 1000};
	struct itimerspec its = {{0, 50 * 1000 * 1000}, {0, 50 * 1000 * 1000}};
	struct epoll_event ev, evs[8];
	struct signalfd_siginfo si;
	unsigned char buf[DATA];
	pthread_t rt, wt;
	uint64_t v;
	char go[4096];
	sigset_t set;
	int n;

	if (argc != 2) {
		fputs("usage: fdkinds DIR\n", stderr);
		return 2;
	}
	snprintf(go, sizeof(go), "%s/go", argv[1]);
	for (int i = 0; i < DATA; i++)
		pattern[i] = (unsigned char)(i * 131 + 7);
	if (pipe(full) || fcntl(full[1], F_SETPIPE_SZ, 256 * 1024) < 0 ||
	    write(full[1], pattern, DATA) != DATA)
		die("full pipe");
	if (pipe2(empty, O_NONBLOCK) || pipe(blocked))
		die("pipes");
	efd = eventfd(42, EFD_SEMAPHORE);
	efd2 = eventfd(0, EFD_NONBLOCK);
	sigemptyset(&set);
	sigaddset(&set, SIGUSR2);
	sigprocmask(SIG_BLOCK, &set, NULL);
	sfd = signalfd(-1, &set, SFD_NONBLOCK);
	tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK);
	ep = epoll_create1(0);
	ep2 = epoll_create1(EPOLL_CLOEXEC);
	if (efd < 0 || efd2 < 0 || sfd < 0 || tfd < 0 || ep < 0 || ep2 < 0)
		die("special fds");
	if (timerfd_settime(tfd, 0, &its, NULL))
		die("timerfd_settime");
	ev.events = EPOLLIN;
	ev.data.u64 = 0x1111;
	if (epoll_ctl(ep, EPOLL_CTL_ADD, full[0], &ev))
		die("epoll_ctl");
	ev.data.u64 = 0x2222;
	if (epoll_ctl(ep, EPOLL_CTL_ADD, efd, &ev))
		die("epoll_ctl");
	ev.events = EPOLLIN | EPOLLET;
	ev.data.u64 = 0x3333;
	if (epoll_ctl(ep, EPOLL_CTL_ADD, empty[0], &ev))
		die("epoll_ctl");
	ev.events = EPOLLIN;
	ev.data.u64 = 0xfeed;
	if (epoll_ctl(ep2, EPOLL_CTL_ADD, efd2, &ev))
		die("epoll_ctl");
	kill(getpid(), SIGUSR2); /* pending: the signalfd has it to read */
	if ((errno = pthread_create(&rt, NULL, reader, NULL)) ||
	    (errno = pthread_create(&wt, NULL, waiter, NULL)))
		die("pthread_create");
	printf("ready %d\n", (int)getpid());
	fflush(stdout);
	wait_file(go);

	/* epoll: the full pipe and the eventfd are ready, the empty one not. */
	n = epoll_wait(ep, evs, 8, 0);
	if (n != 2)
		fail("epoll_wait: %d ready, not 2", n);
	for (int i = 0; i < n; i++)
		if (evs[i].data.u64 != 0x1111 && evs[i].data.u64 != 0x2222)
			fail("epoll_wait: unexpected data %#llx", (unsigned long long)evs[i].data.u64);
	/* The pipe kept every byte, in order, and its size. */
	if (fcntl(full[0], F_GETPIPE_SZ) < 256 * 1024)
		fail("pipe size %d, not 256 KiB", fcntl(full[0], F_GETPIPE_SZ));
	if (read(full[0], buf, DATA) != DATA || memcmp(buf, pattern, DATA))
		fail("the pipe's 100 KiB differ");
	if (read(empty[0], buf, 1) != -1 || errno != EAGAIN)
		fail("the empty non-blocking pipe: not EAGAIN");
	/* A semaphore eventfd gives 1 at a time, 42 times. */
	for (int i = 0; i < 42; i++)
		if (read(efd, &v, 8) != 8 || v != 1)
			fail("eventfd read %d: %llu", i, (unsigned long long)v);
	if (read(sfd, &si, sizeof(si)) != sizeof(si) || si.ssi_signo != SIGUSR2)
		fail("signalfd: SIGUSR2 not there");
	/* The timerfd runs on: wait for more ticks. */
	for (v = 0; v == 0;) {
		nanosleep(&ts, NULL);
		if (read(tfd, &v, 8) != 8 && errno != EAGAIN)
			fail("timerfd read: %s", strerror(errno));
	}
	/* Wake the blocked threads. */
	if (write(blocked[1], "wake", 4) != 4)
		fail("write to the blocked pipe");
	v = 1;
	if (write(efd2, &v, 8) != 8)
		fail("eventfd write");
	pthread_join(rt, NULL);
	pthread_join(wt, NULL);
	if (strcmp(reader_got, "wake"))
		fail("the reading thread got '%s'", reader_got);
	if (failures)
		return 1;
	puts("fdkinds: ok");
	return 0;
}
