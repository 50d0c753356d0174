/* ckpt-coord: the coordinator of one computation.
 *
 * One process, one poll loop, no threads.  Members are the helpers that
 * ckpt-inject leaves beside each program; a checkpoint is a barrier run
 * as three rounds of messages: FREEZE every member (each helper stops
 * its program with ptrace), DUMP every member (each writes its image into
 * the generation's temporary directory), RESUME them, then SYNC (each
 * fsyncs its image: the programs need not be frozen for that).  With
 * --kill the order is SYNC, then RESUME KILL, once the generation is
 * safe.  The generation is renamed into place and made current only when
 * every image is on disk; a failure anywhere resumes every member and
 * leaves the previous generation current. */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "coord.h"
#include "err.h"
#include "util.h"

#define USAGE                                                                                      \
	"usage: ckpt-coord [--port port] [--port-file file] [--bind addr] [--secret-file file] "     \
	"[--daemon] [--exit-on-last] [--interval n] [--dir dir] [--keep n] [--no-gzip] "          \
	"[--save-files-max size] [--log file]\n"

#define MAX_CLIENTS 1000
#define NOBODY_CAME 30 /* seconds an --exit-on-last coordinator waits for a first member */

enum phase { IDLE, FREEZING, DUMPING, SYNCING };
enum mstate { M_OUT, M_FREEZING, M_FROZEN, M_DUMPING, M_DUMPED, M_SYNCING, M_SYNCED, M_FAILED };

struct client {
	int fd;
	struct co_reader r;
	int authed;
	int member; /* joined: the fields below are set */
	int id;
	long pid, helper;
	char host[256], program[64], file[128];
	enum mstate st;
	int resumed; /* let go before its image was synced */
	int waits; /* a ckpt-signal --wait waiting for the checkpoint to end */
	int dead;
};

static struct {
	/* options */
	int port, daemon, exit_on_last, interval, keep, gzip;
	long long save_max;
	const char *port_file, *bind, *secret_file, *log;
	char dir[PATH_MAX];
	char *secret;
	/* state */
	int lfd, next_id, had_member, quit;
	struct client *cl[MAX_CLIENTS];
	int ncl;
	enum phase phase;
	int gen, last_gen, kill_after;
	time_t last_time;
	double next_at;
	char tmpdir[PATH_MAX + 32], failure[1024];
	/* The members whose images the generation holds, for its restart
	 * script (one may exit before the generation is complete). */
	struct gen_member {
		char host[256], file[128];
	} gm[MAX_CLIENTS];
	int ngm;
} C;

static void usage(void)
{
	fputs(USAGE, stderr);
	exit(2);
}

static int nmembers(void)
{
	int n = 0;

	for (int i = 0; i < C.ncl; i++)
		n += C.cl[i]->member && !C.cl[i]->dead;
	return n;
}

static void say(struct client *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(struct client *c, const char *fmt, ...)
{
	char line[CO_LINE_MAX];
	va_list ap;

	if (c->dead)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	/* A client that does not read its replies is dropped, not waited
	 * for: the socket is non-blocking. */
	if (co_send(c->fd, "%s", line)) {
		warnx("client %d: %s; dropped", c->fd, err_get());
		c->dead = 1;
	}
}

/* "name" for messages: member 3 (counter, pid 1234). */
static const char *who(const struct client *c)
{
	static char buf[400];

	snprintf(buf, sizeof(buf), "member %d (%s, pid %ld on %s)", c->id, c->program, c->pid,
		 c->host);
	return buf;
}

/* Generation directories: ckpt_gen_NNNNNN under dir. */
static int gen_number(const char *name)
{
	long long n;

	if (strncmp(name, "ckpt_gen_", 9))
		return -1;
	n = co_num(name + 9, INT_MAX);
	return n > 0 ? (int)n : -1;
}

static void rm_tree(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *e;
	char p[PATH_MAX + 300];

	if (!d)
		return;
	while ((e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		snprintf(p, sizeof(p), "%s/%s", path, e->d_name);
		if (unlink(p) && errno == EISDIR)
			rm_tree(p);
	}
	closedir(d);
	rmdir(path);
}

static int cmp_int(const void *a, const void *b)
{
	return *(const int *)a - *(const int *)b;
}

/* The generations in dir, sorted (malloc'd); stale temporary ones of a
 * coordinator that died mid-checkpoint are removed when clean is set. */
static int *list_gens(int *n, int clean)
{
	DIR *d = opendir(C.dir);
	struct dirent *e;
	int *g = NULL, cap = 0;

	*n = 0;
	if (!d)
		return NULL;
	while ((e = readdir(d))) {
		int k = gen_number(e->d_name);
		if (clean && !strncmp(e->d_name, ".ckpt_gen_", 10)) {
			char p[PATH_MAX + 300];
			snprintf(p, sizeof(p), "%s/%s", C.dir, e->d_name);
			warnx("removing %s, left by a checkpoint that did not finish", p);
			rm_tree(p);
			continue;
		}
		if (k < 0)
			continue;
		if (*n == cap) {
			int *ng = realloc(g, (cap = cap * 2 + 16) * sizeof(int));
			if (!ng)
				break;
			g = ng;
		}
		g[(*n)++] = k;
	}
	closedir(d);
	if (*n)
		qsort(g, *n, sizeof(int), cmp_int);
	return g;
}

static void fsync_path(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd >= 0) {
		fsync(fd);
		close(fd);
	}
}

/* Point dir/name at target, atomically (a new link renamed over it). */
static int relink(const char *target, const char *name)
{
	char tmp[PATH_MAX + 64], path[PATH_MAX + 64];

	snprintf(tmp, sizeof(tmp), "%s/.%s.tmp", C.dir, name);
	snprintf(path, sizeof(path), "%s/%s", C.dir, name);
	unlink(tmp);
	if (symlink(target, tmp) || rename(tmp, path)) {
		err_sys("cannot point %s at %s", path, target);
		unlink(tmp);
		return -1;
	}
	return 0;
}

/* Every image is on disk: make the generation current, prune old ones. */
static int commit(void)
{
	char final[PATH_MAX + 32], name[32];
	int *g, n;

	snprintf(name, sizeof(name), "ckpt_gen_%06d", C.gen);
	snprintf(final, sizeof(final), "%s/%s", C.dir, name);
	{
		const char *hosts[MAX_CLIENTS], *files[MAX_CLIENTS];
		struct co_script sc = {.gen = C.gen, .port = C.port, .interval = C.interval,
				       .keep = C.keep, .gzip = C.gzip, .save_max = C.save_max,
				       .dir = C.dir, .host = hosts, .file = files, .n = C.ngm};
		for (int i = 0; i < C.ngm; i++) {
			hosts[i] = C.gm[i].host;
			files[i] = C.gm[i].file;
		}
		if (co_write_script(C.tmpdir, &sc))
			return -1;
	}
	fsync_path(C.tmpdir);
	if (rename(C.tmpdir, final)) {
		err_sys("cannot rename %s to %s", C.tmpdir, final);
		return -1;
	}
	C.tmpdir[0] = 0;
	if (relink(name, "current") ||
	    relink("current/ckpt_restart_script.sh", "ckpt_restart_script.sh"))
		return -1;
	fsync_path(C.dir);
	C.last_gen = C.gen;
	C.last_time = time(NULL);
	g = list_gens(&n, 0);
	for (int i = 0; C.keep > 0 && i < n - C.keep; i++) {
		char p[PATH_MAX + 32];
		snprintf(p, sizeof(p), "%s/ckpt_gen_%06d", C.dir, g[i]);
		rm_tree(p);
	}
	free(g);
	return 0;
}

/* The checkpoint is over, one way or the other: members go on (or die),
 * waiters learn how it went. */
static void finish(int ok)
{
	for (int i = 0; i < C.ncl; i++) {
		struct client *c = C.cl[i];
		if (c->member && c->st != M_OUT) {
			if (!c->resumed)
				say(c, "RESUME %d %s", C.gen, ok && C.kill_after ? "KILL" : "RUN");
			c->st = M_OUT;
			c->resumed = 0;
		}
	}
	if (!ok && C.tmpdir[0]) {
		rm_tree(C.tmpdir);
		C.tmpdir[0] = 0;
	}
	for (int i = 0; i < C.ncl; i++) {
		struct client *c = C.cl[i];
		char esc[PATH_MAX * 3];
		if (!c->waits)
			continue;
		c->waits = 0;
		if (ok) {
			char d[PATH_MAX + 32];
			snprintf(d, sizeof(d), "%s/ckpt_gen_%06d", C.dir, C.gen);
			if (co_escape(d, esc, sizeof(esc)))
				snprintf(esc, sizeof(esc), "-");
			say(c, "OK %d %s", C.gen, esc);
		} else {
			say(c, "ERR checkpoint %d failed: %s", C.gen, C.failure);
		}
	}
	if (ok)
		warnx("checkpoint %d written to %s/ckpt_gen_%06d", C.gen, C.dir, C.gen);
	else
		warnx("checkpoint %d failed: %s", C.gen, C.failure);
	C.phase = IDLE;
	C.failure[0] = 0;
	if (C.interval > 0)
		C.next_at = now_sec() + C.interval;
}

static void fail_ckpt(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void fail_ckpt(const char *fmt, ...)
{
	va_list ap;

	if (C.failure[0])
		return; /* the first cause is the one to report */
	va_start(ap, fmt);
	vsnprintf(C.failure, sizeof(C.failure), fmt, ap);
	va_end(ap);
}

/* Move the checkpoint on once no member is still busy with a round. */
static void progress(void)
{
	int busy = 0;

	if (C.phase == IDLE)
		return;
	for (int i = 0; i < C.ncl; i++)
		if (C.cl[i]->member &&
		    (C.cl[i]->st == M_FREEZING || C.cl[i]->st == M_DUMPING ||
		     C.cl[i]->st == M_SYNCING))
			busy = 1;
	if (busy)
		return;
	if (C.failure[0]) {
		finish(0);
		return;
	}
	if (C.phase == FREEZING) {
		char esc[PATH_MAX * 3];
		if (co_escape(C.tmpdir, esc, sizeof(esc))) {
			fail_ckpt("directory name too long");
			finish(0);
			return;
		}
		C.phase = DUMPING;
		for (int i = 0; i < C.ncl; i++) {
			struct client *c = C.cl[i];
			if (!c->member || c->st != M_FROZEN)
				continue;
			snprintf(c->file, sizeof(c->file), "ckpt_%s_%d.ckpt%s", c->program, c->id,
				 C.gzip ? ".gz" : "");
			c->st = M_DUMPING;
			say(c, "DUMP %d %s %s %d %lld", C.gen, esc, c->file, C.gzip, C.save_max);
		}
		return;
	}
	if (C.phase == DUMPING) {
		/* Every image is written: the barrier is over.  The programs
		 * go on while the images reach the disk, unless they are to
		 * die once the generation is safe. */
		C.phase = SYNCING;
		C.ngm = 0;
		for (int i = 0; i < C.ncl; i++) {
			struct client *c = C.cl[i];
			if (!c->member || (c->st != M_DUMPED && c->st != M_SYNCED))
				continue;
			snprintf(C.gm[C.ngm].host, sizeof(C.gm[0].host), "%s", c->host);
			snprintf(C.gm[C.ngm++].file, sizeof(C.gm[0].file), "%s", c->file);
			if (!C.kill_after) {
				say(c, "RESUME %d RUN", C.gen);
				c->resumed = 1;
			}
			if (c->st == M_DUMPED) {
				c->st = M_SYNCING;
				say(c, "SYNC %d", C.gen);
			}
		}
		progress();
		return;
	}
	if (commit()) {
		fail_ckpt("%s", err_get());
		finish(0);
		return;
	}
	finish(1);
}

static void start_ckpt(struct client *asker, int wait, int kill_after)
{
	int *g, n;

	if (C.phase != IDLE) {
		/* One at a time: a second request joins the one under way. */
		if (asker && wait)
			asker->waits = 1;
		else if (asker)
			say(asker, "OK %d", C.gen);
		return;
	}
	if (!nmembers()) {
		if (asker)
			say(asker, "ERR no members to checkpoint");
		return;
	}
	g = list_gens(&n, 0);
	C.gen = (n ? g[n - 1] : 0) + 1;
	if (C.gen <= C.last_gen)
		C.gen = C.last_gen + 1;
	free(g);
	snprintf(C.tmpdir, sizeof(C.tmpdir), "%s/.ckpt_gen_%06d.tmp", C.dir, C.gen);
	if (mkdir(C.tmpdir, 0700)) {
		err_sys("cannot make %s", C.tmpdir);
		C.tmpdir[0] = 0;
		if (asker)
			say(asker, "ERR %s", err_get());
		warnx("checkpoint %d: %s", C.gen, err_get());
		return;
	}
	C.phase = FREEZING;
	C.kill_after = kill_after;
	C.failure[0] = 0;
	for (int i = 0; i < C.ncl; i++) {
		struct client *c = C.cl[i];
		if (!c->member || c->dead)
			continue;
		c->st = M_FREEZING;
		say(c, "FREEZE %d", C.gen);
	}
	if (asker && wait)
		asker->waits = 1;
	else if (asker)
		say(asker, "OK %d", C.gen);
	progress();
}

/* One request from c. */
static void handle(struct client *c, char *line, size_t len)
{
	struct co_msg m;
	char esc[PATH_MAX * 3];
	long long gen;

	if (co_parse(line, len, &m)) {
		say(c, "ERR %s", err_get());
		return;
	}
	if (m.verb == CO_AUTH) {
		if (!C.secret || co_secret_eq(m.argv[0], C.secret)) {
			c->authed = 1;
			say(c, "OK");
		} else {
			warnx("client %d: wrong secret; refused", c->fd);
			say(c, "ERR wrong secret");
			c->dead = 1;
		}
		return;
	}
	if (!c->authed) {
		warnx("client %d: %s without the secret; refused", c->fd, co_verb_name(m.verb));
		say(c, "ERR this coordinator needs the shared secret first (AUTH)");
		c->dead = 1;
		return;
	}
	gen = m.argc ? co_num(m.argv[0], CO_NUM_MAX) : 0;
	switch (m.verb) {
	case CO_JOIN:
		if (c->member) {
			say(c, "ERR already joined as member %d", c->id);
			return;
		}
		c->member = 1;
		c->st = M_OUT;
		c->id = ++C.next_id;
		c->pid = (long)co_num(m.argv[0], INT_MAX);
		c->helper = (long)co_num(m.argv[1], INT_MAX);
		snprintf(c->host, sizeof(c->host), "%s", m.argv[2]);
		/* The program's name goes into file names: keep it tame. */
		snprintf(c->program, sizeof(c->program), "%s", m.argv[3]);
		for (char *p = c->program; *p; p++)
			if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.",
				    *p))
				*p = '-';
		C.had_member = 1;
		c->st = M_OUT;
		say(c, "OK %d", c->id);
		warnx("%s joined", who(c));
		return;
	case CO_FROZEN:
	case CO_DUMPED:
	case CO_SYNCED:
	case CO_FAILED:
		if (!c->member) {
			say(c, "ERR %s: not a member", co_verb_name(m.verb));
			return;
		}
		if (C.phase == IDLE || gen != C.gen || c->st == M_OUT) {
			say(c, "ERR %s: no checkpoint %lld under way for this member",
			    co_verb_name(m.verb), gen);
			return;
		}
		if (m.verb == CO_FAILED) {
			fail_ckpt("%s: %s", who(c), m.argv[1]);
			c->st = M_FAILED;
		} else if (m.verb == CO_FROZEN && c->st == M_FREEZING) {
			c->st = M_FROZEN;
		} else if (m.verb == CO_DUMPED && c->st == M_DUMPING) {
			c->st = M_DUMPED;
		} else if (m.verb == CO_SYNCED && (c->st == M_SYNCING || c->st == M_DUMPED)) {
			/* Unasked (M_DUMPED): a helper whose program exited
			 * syncs its image before it goes. */
			c->st = M_SYNCED;
		} else {
			say(c, "ERR %s out of turn", co_verb_name(m.verb));
			return;
		}
		progress();
		return;
	case CO_GONE:
		if (!c->member) {
			say(c, "ERR GONE: not a member");
			return;
		}
		warnx("%s exited", who(c));
		c->dead = 1;
		return;
	case CO_CHECKPOINT: {
		int wait = 0, kill_after = 0;
		for (int i = 0; i < m.argc; i++) {
			if (!strcmp(m.argv[i], "WAIT"))
				wait = 1;
			else if (!strcmp(m.argv[i], "KILL"))
				kill_after = 1;
			else {
				say(c, "ERR CHECKPOINT: unknown argument (WAIT or KILL)");
				return;
			}
		}
		start_ckpt(c, wait, kill_after);
		return;
	}
	case CO_STATUS:
		if (co_escape(C.dir, esc, sizeof(esc)))
			snprintf(esc, sizeof(esc), "-");
		say(c, "OK members=%d state=%s gen=%d last=%lld interval=%d keep=%d gzip=%d dir=%s",
		    nmembers(), C.phase == IDLE ? "idle" : "checkpointing", C.last_gen,
		    (long long)C.last_time, C.interval, C.keep, C.gzip, esc);
		return;
	case CO_LIST:
		for (int i = 0; i < C.ncl; i++) {
			struct client *o = C.cl[i];
			char h[800], p[200];
			if (!o->member || o->dead)
				continue;
			if (co_escape(o->host, h, sizeof(h)) || co_escape(o->program, p, sizeof(p)))
				continue;
			say(c, "MEMBER %d %ld %ld %s %s", o->id, o->pid, o->helper, h, p);
		}
		say(c, "OK %d", nmembers());
		return;
	case CO_INTERVAL:
		if (gen > 86400 * 365) {
			say(c, "ERR INTERVAL: over a year");
			return;
		}
		C.interval = (int)gen;
		C.next_at = C.interval ? now_sec() + C.interval : 0;
		say(c, "OK %d", C.interval);
		return;
	case CO_KILL:
		if (C.phase != IDLE) {
			say(c, "ERR a checkpoint is under way; try again when it ends");
			return;
		}
		for (int i = 0; i < C.ncl; i++)
			if (C.cl[i]->member && !C.cl[i]->dead)
				say(C.cl[i], "RESUME 0 KILL");
		say(c, "OK %d", nmembers());
		return;
	case CO_QUIT:
		say(c, "OK");
		C.quit = 1;
		return;
	default:
		say(c, "ERR %s is sent by the coordinator, not to it", co_verb_name(m.verb));
		return;
	}
}

static void drop(int i)
{
	struct client *c = C.cl[i];

	if (c->member) {
		if (c->st != M_OUT && c->st != M_SYNCED)
			fail_ckpt("%s left during the checkpoint", who(c));
		if (!c->dead || c->st != M_OUT)
			warnx("%s left", who(c));
	}
	close(c->fd);
	free(c);
	C.cl[i] = C.cl[--C.ncl];
	progress();
}

static void accept_client(void)
{
	int fd = accept4(C.lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	struct client *c;

	if (fd < 0)
		return;
	if (C.ncl == MAX_CLIENTS || !(c = calloc(1, sizeof(*c)))) {
		warnx("too many clients; one refused");
		close(fd);
		return;
	}
	c->fd = fd;
	c->r.fd = fd;
	c->authed = !C.secret;
	C.cl[C.ncl++] = c;
}

static void serve_client(struct client *c)
{
	ssize_t n = co_fill(&c->r);
	char *line;
	int k;

	if (n == 0 || (n < 0 && errno != EAGAIN)) {
		c->dead = 1;
		return;
	}
	while (!c->dead && (k = co_next_line(&c->r, &line)) != 0) {
		if (k == -2) {
			say(c, "ERR line over %d bytes", CO_LINE_MAX);
			continue;
		}
		if (k < 0)
			break;
		handle(c, line, strlen(line));
	}
}

static int listen_on(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(C.port)};
	socklen_t len = sizeof(a);
	int one = 1;

	if (inet_pton(AF_INET, C.bind ? C.bind : "127.0.0.1", &a.sin_addr) != 1)
		die(2, "not an IPv4 address: %s", C.bind);
	C.lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (C.lfd < 0)
		die(1, "cannot make a socket: %s", strerror(errno));
	setsockopt(C.lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(C.lfd, (struct sockaddr *)&a, sizeof(a)) || listen(C.lfd, 64))
		die(1, "cannot listen on %s:%d: %s", C.bind ? C.bind : "127.0.0.1", C.port,
		    strerror(errno));
	if (getsockname(C.lfd, (struct sockaddr *)&a, &len))
		die(1, "cannot read the port: %s", strerror(errno));
	return ntohs(a.sin_port);
}

static void write_port_file(int port)
{
	char tmp[PATH_MAX + 16], buf[16];
	int fd, n = snprintf(buf, sizeof(buf), "%d\n", port);

	snprintf(tmp, sizeof(tmp), "%s.tmp", C.port_file);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || write_all(fd, buf, n) || close(fd) || rename(tmp, C.port_file))
		die(1, "cannot write the port file %s: %s", C.port_file, strerror(errno));
}

static void daemonize(void)
{
	pid_t pid;
	int fd;

	fflush(NULL);
	pid = fork();
	if (pid < 0)
		die(1, "cannot fork: %s", strerror(errno));
	if (pid > 0)
		_exit(0);
	setsid();
	fd = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (fd >= 0) {
		dup2(fd, 0);
		dup2(fd, 1);
		if (!C.log)
			dup2(fd, 2);
		close(fd);
	}
}

static int number_opt(const char *s, const char *what, int max)
{
	long long v = co_num(s, max);

	if (v < 0)
		die(2, "%s: not a number from 0 to %d: %s", what, max, s);
	return (int)v;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"port", required_argument, NULL, 'p'},
		{"port-file", required_argument, NULL, 'f'},
		{"bind", required_argument, NULL, 'b'},
		{"secret-file", required_argument, NULL, 's'},
		{"daemon", no_argument, NULL, 'd'},
		{"exit-on-last", no_argument, NULL, 'x'},
		{"interval", required_argument, NULL, 'i'},
		{"dir", required_argument, NULL, 'D'},
		{"keep", required_argument, NULL, 'k'},
		{"no-gzip", no_argument, NULL, 'z'},
		{"save-files-max", required_argument, NULL, 'm'},
		{"log", required_argument, NULL, 'l'},
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},
		{NULL, 0, NULL, 0}};
	const char *dir = getenv("CKPT_DIR"), *gz = getenv("CKPT_GZIP"), *port = NULL;
	int c, actual;
	int *g, n;
	double started = now_sec();

	prog = "ckpt-coord";
	C.keep = 3;
	C.gzip = !(gz && !strcmp(gz, "0"));
	C.save_max = 256ll << 20;
	while ((c = getopt_long(argc, argv, "hV", longopts, NULL)) != -1) {
		switch (c) {
		case 'p':
			port = optarg;
			break;
		case 'f':
			C.port_file = optarg;
			break;
		case 'b':
			C.bind = optarg;
			break;
		case 's':
			C.secret_file = optarg;
			break;
		case 'd':
			C.daemon = 1;
			break;
		case 'x':
			C.exit_on_last = 1;
			break;
		case 'i':
			C.interval = number_opt(optarg, "--interval", 86400 * 365);
			break;
		case 'D':
			dir = optarg;
			break;
		case 'k':
			C.keep = number_opt(optarg, "--keep", 1000000);
			break;
		case 'z':
			C.gzip = 0;
			break;
		case 'm':
			C.save_max = parse_size(optarg);
			if (C.save_max < 0)
				die(2, "--save-files-max: not a size: %s", optarg);
			break;
		case 'l':
			C.log = optarg;
			break;
		case 'h':
			fputs(USAGE, stdout);
			return 0;
		case 'V':
			printf("ckpt-coord %s\n", CKPT_VERSION);
			return 0;
		default:
			usage();
		}
	}
	if (optind != argc)
		usage();
	C.port = CO_DEFAULT_PORT;
	if (!port)
		port = getenv("CKPT_COORD_PORT");
	if (port && *port)
		C.port = number_opt(port, "--port", 65535);
	if (C.bind && !C.secret_file)
		die(2, "--bind %s listens beyond this host: it needs --secret-file", C.bind);
	if (C.secret_file && !(C.secret = co_read_secret(C.secret_file)))
		die(2, "%s", err_get());
	if (!realpath(dir && *dir ? dir : ".", C.dir))
		die(1, "checkpoint directory %s: %s", dir && *dir ? dir : ".", strerror(errno));
	if (C.log) {
		int fd = open(C.log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
		if (fd < 0)
			die(1, "cannot open the log %s: %s", C.log, strerror(errno));
		dup2(fd, 2);
		close(fd);
	}
	signal(SIGPIPE, SIG_IGN);
	actual = listen_on();
	C.port = actual;
	g = list_gens(&n, 1);
	C.last_gen = n ? g[n - 1] : 0;
	free(g);
	if (C.port_file)
		write_port_file(actual);
	if (C.daemon)
		daemonize();
	warnx("listening on %s:%d, checkpoints in %s", C.bind ? C.bind : "127.0.0.1", actual,
	      C.dir);
	if (C.interval)
		C.next_at = now_sec() + C.interval;

	while (!C.quit) {
		struct pollfd pfd[MAX_CLIENTS + 1];
		int timeout = -1;

		for (int i = C.ncl; i-- > 0;)
			if (C.cl[i]->dead)
				drop(i);
		if (C.exit_on_last && C.had_member && !nmembers() && C.phase == IDLE)
			break;
		/* Started for members that never came (their program exited
		 * before its helper joined): do not wait for ever. */
		if (C.exit_on_last && !C.had_member && now_sec() - started > NOBODY_CAME) {
			warnx("no member joined in %d seconds", NOBODY_CAME);
			break;
		}
		if (C.exit_on_last && !C.had_member)
			timeout = 1000;
		if (C.interval && C.next_at) {
			double left = C.next_at - now_sec();
			if (left <= 0) {
				C.next_at = now_sec() + C.interval;
				start_ckpt(NULL, 0, 0);
				continue;
			}
			if (timeout < 0 || (int)(left * 1000) + 1 < timeout)
				timeout = (int)(left * 1000) + 1;
		}
		pfd[0].fd = C.lfd;
		pfd[0].events = POLLIN;
		for (int i = 0; i < C.ncl; i++) {
			pfd[i + 1].fd = C.cl[i]->fd;
			pfd[i + 1].events = POLLIN;
		}
		n = C.ncl;
		if (poll(pfd, n + 1, timeout) < 0) {
			if (errno == EINTR)
				continue;
			die(1, "poll: %s", strerror(errno));
		}
		for (int i = 0; i < n; i++)
			if (pfd[i + 1].revents)
				serve_client(C.cl[i]);
		if (pfd[0].revents & POLLIN)
			accept_client();
	}
	if (C.phase != IDLE) {
		fail_ckpt("the coordinator was told to quit");
		finish(0);
	}
	warnx("exiting");
	return 0;
}
