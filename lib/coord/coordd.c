/* coordd.c: the coordinator of one computation (ckpt-coord).
 *
 * One poll loop, no threads.  Members are the helpers that ckpt-inject
 * leaves beside each program (member.c); a checkpoint is a barrier
 * run as rounds of messages: FREEZE every member (each helper stops its
 * program's tree with ptrace), DUMP every member (each writes its image
 * into the generation's temporary directory), RESUME them, then SYNC
 * (each fsyncs its image: the programs need not be frozen for that).
 * With KILL the order is SYNC, then RESUME KILL, once the generation is
 * safe.  The generation is renamed into place and made current only when
 * every image is on disk; a failure anywhere resumes every member and
 * leaves the previous generation current. */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "coord/coord.h"
#include "base/base.h"
#include "io/io.h"

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
	double since; /* when it connected: without the secret, it has AUTH_WAIT s */
	/* The challenge-response: the client's nonce and ours, once HELLO came. */
	char nonce_c[2 * CO_NONCE + 1], nonce_s[2 * CO_NONCE + 1];
	char addr[INET6_ADDRSTRLEN]; /* where it connects from */
	/* The ends its program holds whose other end is outside its tree
	 * (END, during FREEZE), and how many of them are paired. */
	struct cd_end {
		char kind[8], local[96], remote[96];
		int paired;
	} *ends;
	int nends, links;
};

/* A restarted connection's rendezvous: where its accepting end listens
 * (LISTEN), and the member whose connecting end asked for it (WANT). */
struct cd_rv {
	char token[40], addr[80];
	int port, wanter; /* wanter: a member id, 0 for none yet */
};

/* Without the secret proved: connections an address may hold, and all
 * may hold (a newcomer past that drops the oldest).  Addresses whose
 * failed proofs are remembered. */
#define UNAUTH_PER_ADDR 8
#define UNAUTH_MAX 64
#define PENALTIES 64
struct penalty {
	char addr[INET6_ADDRSTRLEN];
	int fails;
	double until;
};

/* Seconds a client of a coordinator with a secret has to give it: idle
 * connections from anyone must not fill the table and lock members out. */
#define AUTH_WAIT 10

struct coord {
	/* As cd_open was given them, but for the port (the one it listens
	 * on) and the interval (as INTERVAL sets it). */
	struct cd_settings set;
	/* state */
	int lfd, next_id, had_member, quit;
	long refused;      /* connections refused: another user's, or unauthenticated */
	double refused_at; /* when the log last said so */
	struct penalty pen[PENALTIES];
	struct client *cl[MAX_CLIENTS];
	int ncl;
	enum phase phase;
	int gen, last_gen, kill_after;
	time_t last_time;
	double next_at;
	char tmpdir[PATH_MAX + 32], failure[1024];
	/* The members whose images the generation holds, for its restart
	 * script (one may exit before the generation is complete). */
	struct co_gen_member gm[MAX_CLIENTS];
	int ngm;
	double started;
	double round_at; /* when the round under way began */
	struct cd_rv *rv;
	int nrv;
	/* The connections between members the last checkpoint paired: the
	 * two members' ids and the kind, for STATUS. */
	struct cd_conn {
		int a, b;
		char kind[8];
	} *conns;
	int nconns;
};

static int nmembers(struct coord *cd)
{
	int n = 0;

	for (int i = 0; i < cd->ncl; i++)
		n += cd->cl[i]->member && !cd->cl[i]->dead;
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

/* A joining member's id: the one it asks for (a restarted member keeps
 * the id its images are named by) unless a member has it already, else
 * the next one never given. */
static int join_id(struct coord *cd, int want)
{
	for (int i = 0; want > 0 && i < cd->ncl; i++)
		if (cd->cl[i]->member && !cd->cl[i]->dead && cd->cl[i]->id == want)
			want = 0;
	if (want <= 0)
		return ++cd->next_id;
	if (want > cd->next_id)
		cd->next_id = want;
	return want;
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

/* Remove name in the directory dfd and, if it is a directory (not a link
 * to one), everything in it, never following a link: a link planted
 * where a generation was is removed, not what it points to. */
static void rm_tree_at(int dfd, const char *name)
{
	struct dirent *e;
	DIR *d;
	int fd;

	if (unlinkat(dfd, name, 0) == 0 || errno != EISDIR)
		return;
	fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd >= 0 && (d = fdopendir(fd))) {
		while ((e = readdir(d)))
			if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
				rm_tree_at(dirfd(d), e->d_name);
		closedir(d);
	} else if (fd >= 0) {
		close(fd);
	}
	unlinkat(dfd, name, AT_REMOVEDIR);
}

static void rm_tree(const char *path)
{
	rm_tree_at(AT_FDCWD, path);
}

static int cmp_int(const void *a, const void *b)
{
	return *(const int *)a - *(const int *)b;
}

/* The generations in dir, sorted (malloc'd); stale temporary ones of a
 * coordinator that died mid-checkpoint are removed when clean is set. */
static int *list_gens(struct coord *cd, int *n, int clean)
{
	DIR *d = opendir(cd->set.dir);
	struct dirent *e;
	int *g = NULL, cap = 0;

	*n = 0;
	if (!d)
		return NULL;
	while ((e = readdir(d))) {
		int k = gen_number(e->d_name);
		if (clean && !strncmp(e->d_name, ".ckpt_gen_", 10)) {
			char p[PATH_MAX + 300];
			snprintf(p, sizeof(p), "%s/%s", cd->set.dir, e->d_name);
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
static int relink(struct coord *cd, const char *target, const char *name)
{
	char tmp[PATH_MAX + 64], path[PATH_MAX + 64];

	snprintf(tmp, sizeof(tmp), "%s/.%s.tmp", cd->set.dir, name);
	snprintf(path, sizeof(path), "%s/%s", cd->set.dir, name);
	unlink(tmp);
	if (symlink(target, tmp) || rename(tmp, path)) {
		err_sys("cannot point %s at %s", path, target);
		unlink(tmp);
		return -1;
	}
	return 0;
}

/* Every member of the generation said SYNCED, and each image on this
 * host is there, as it said: a member that reported an image it did not
 * write (or one since changed) fails the checkpoint.  An image on
 * another host is that host's to hold. */
static int check_images(struct coord *cd)
{
	for (int i = 0; i < cd->ngm; i++) {
		struct co_gen_member *g = &cd->gm[i];
		char path[PATH_MAX + 256];
		uint64_t bytes;
		uint32_t crc;
		int fd;

		if (!g->synced) {
			err_set("member %d (%s): its image was never synced", g->id, g->program);
			return -1;
		}
		snprintf(path, sizeof(path), "%s/%s", cd->tmpdir, g->file);
		fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0 && errno == ENOENT && strcmp(g->host, co_hostname()))
			continue;
		if (fd < 0 || co_image_sum(fd, &bytes, &crc) || bytes != g->bytes ||
		    crc != g->crc) {
			if (fd >= 0)
				close(fd);
			err_set("member %d (%s): its image %s is not the one it reported (%llu bytes, "
				"crc32c %08x)",
				g->id, g->program, path, (unsigned long long)g->bytes, g->crc);
			return -1;
		}
		close(fd);
	}
	return 0;
}

/* Every image is on disk: make the generation current, prune old ones. */
static int commit(struct coord *cd)
{
	char final[PATH_MAX + 32], name[32];
	int *g, n;

	if (check_images(cd))
		return -1;

	snprintf(name, sizeof(name), "ckpt_gen_%06d", cd->gen);
	snprintf(final, sizeof(final), "%s/%s", cd->set.dir, name);
	{
		struct co_script sc = {.gen = cd->gen, .port = cd->set.port,
				       .interval = cd->set.interval, .keep = cd->set.keep,
				       .compress = cd->set.compress, .save_max = cd->set.save_max,
				       .dir = cd->set.dir, .bind = cd->set.bind,
				       .secret_file = cd->set.secret_file, .m = cd->gm, .n = cd->ngm};
		if (co_write_script(cd->tmpdir, &sc))
			return -1;
	}
	fsync_path(cd->tmpdir);
	if (rename(cd->tmpdir, final)) {
		err_sys("cannot rename %s to %s", cd->tmpdir, final);
		return -1;
	}
	cd->tmpdir[0] = 0;
	if (relink(cd, name, "current") ||
	    relink(cd, "current/ckpt_restart_script.sh", "ckpt_restart_script.sh"))
		return -1;
	fsync_path(cd->set.dir);
	cd->last_gen = cd->gen;
	cd->last_time = time(NULL);
	g = list_gens(cd, &n, 0);
	for (int i = 0; cd->set.keep > 0 && i < n - cd->set.keep; i++) {
		char p[PATH_MAX + 32];
		snprintf(p, sizeof(p), "%s/ckpt_gen_%06d", cd->set.dir, g[i]);
		rm_tree(p);
	}
	free(g);
	return 0;
}

/* The checkpoint is over, one way or the other: members go on (or die),
 * waiters learn how it went. */
static void finish(struct coord *cd, int ok)
{
	for (int i = 0; i < cd->ncl; i++) {
		struct client *c = cd->cl[i];
		if (c->member && c->st != M_OUT) {
			if (!c->resumed)
				say(c, "RESUME %d %s", cd->gen, ok && cd->kill_after ? "KILL" : "RUN");
			c->st = M_OUT;
			c->resumed = 0;
		}
	}
	if (!ok && cd->tmpdir[0]) {
		rm_tree(cd->tmpdir);
		cd->tmpdir[0] = 0;
	}
	for (int i = 0; i < cd->ncl; i++) {
		struct client *c = cd->cl[i];
		char esc[PATH_MAX * 3];
		if (!c->waits)
			continue;
		c->waits = 0;
		if (ok) {
			char d[PATH_MAX + 32];
			snprintf(d, sizeof(d), "%s/ckpt_gen_%06d", cd->set.dir, cd->gen);
			if (co_escape(d, esc, sizeof(esc)))
				snprintf(esc, sizeof(esc), "-");
			say(c, "OK %d %s", cd->gen, esc);
		} else {
			say(c, "ERR checkpoint %d failed: %s", cd->gen, cd->failure);
		}
	}
	if (ok)
		warnx("checkpoint %d written to %s/ckpt_gen_%06d", cd->gen, cd->set.dir, cd->gen);
	else
		warnx("checkpoint %d failed: %s", cd->gen, cd->failure);
	cd->phase = IDLE;
	cd->failure[0] = 0;
	if (cd->set.interval > 0)
		cd->next_at = now_sec() + cd->set.interval;
}

static void fail_ckpt(struct coord *cd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail_ckpt(struct coord *cd, const char *fmt, ...)
{
	va_list ap;

	if (cd->failure[0])
		return; /* the first cause is the one to report */
	va_start(ap, fmt);
	vsnprintf(cd->failure, sizeof(cd->failure), fmt, ap);
	va_end(ap);
}

/* A member still at work on the round under way. */
static int in_work(const struct client *c)
{
	return c->member && (c->st == M_FREEZING || c->st == M_DUMPING || c->st == M_SYNCING);
}

/* The port at the end of an address ("127.0.0.1:80", "[::1]:80"). */
static long port_of(const char *addr)
{
	const char *p = strrchr(addr, ':');

	return p ? strtol(p + 1, NULL, 10) : 0;
}

/* One end of a connection between two members, told its peer and its
 * side: 0 accepts at a restart (the end on the lower port, a server's
 * as a rule), 1 connects. */
static void say_link(struct coord *cd, struct client *c, const struct cd_end *e, int side,
		     const char *token, const struct client *peer)
{
	char l[200], r[200], name[200];

	if (co_escape(e->local, l, sizeof(l)) || co_escape(e->remote, r, sizeof(r)) ||
	    co_escape(peer->program, name, sizeof(name)))
		return;
	say(c, "LINK %d %s %d %d %s %s %s", cd->gen, token, side, peer->id, name, l, r);
	c->links++;
}

static void note_conn(struct coord *cd, int a, int b, const char *kind)
{
	struct cd_conn *n = realloc(cd->conns, (cd->nconns + 1) * sizeof(*n));

	if (!n)
		return;
	cd->conns = n;
	n += cd->nconns++;
	*n = (struct cd_conn){.a = a < b ? a : b, .b = a < b ? b : a};
	snprintf(n->kind, sizeof(n->kind), "%s", kind);
}

/* The connections STATUS shows: "1-2:tcp,2-3:pipe" ("-" for none) into
 * out, those whose members are both still members. */
static void conns_text(struct coord *cd, char *out, size_t size)
{
	size_t len = 0;

	snprintf(out, size, "-");
	for (int i = 0; i < cd->nconns && len + 40 < size; i++) {
		int have = 0;
		for (int k = 0; k < cd->ncl; k++)
			have += cd->cl[k]->member && !cd->cl[k]->dead &&
				(cd->cl[k]->id == cd->conns[i].a || cd->cl[k]->id == cd->conns[i].b);
		if (have == 2)
			len += (size_t)snprintf(out + len, size - len, "%s%d-%d:%s", len ? "," : "",
						cd->conns[i].a, cd->conns[i].b, cd->conns[i].kind);
	}
}

/* Every member is frozen: pair the ends they reported, a TCP connection
 * by its two addresses as each side sees them, and name each connection
 * to both of its ends (LINK) before they drain it. */
static void pair_ends(struct coord *cd)
{
	cd->nconns = 0;
	for (int i = 0; i < cd->ncl; i++)
		for (int k = 0; k < cd->cl[i]->nends; k++)
			cd->cl[i]->ends[k].paired = 0;
	for (int i = 0; i < cd->ncl; i++) {
		struct client *a = cd->cl[i];
		if (!a->member || a->st != M_FROZEN)
			continue;
		for (int k = 0; k < a->nends; k++) {
			struct cd_end *e = &a->ends[k];
			for (int j = 0; j < cd->ncl && !e->paired; j++) {
				struct client *b = cd->cl[j];
				if (b == a || !b->member || b->st != M_FROZEN)
					continue;
				for (int q = 0; q < b->nends && !e->paired; q++) {
					struct cd_end *f = &b->ends[q];
					char nonce[2 * CO_NONCE + 1];
					int a_first;
					if (f->paired || strcmp(e->kind, f->kind) ||
					    strcmp(e->local, f->remote) || strcmp(e->remote, f->local) ||
					    co_nonce(nonce))
						continue;
					nonce[32] = 0;
					e->paired = f->paired = 1;
					a_first = port_of(e->local) < port_of(f->local) ||
						  (port_of(e->local) == port_of(f->local) && a->id < b->id);
					say_link(cd, a, e, !a_first, nonce, b);
					say_link(cd, b, f, a_first, nonce, a);
					note_conn(cd, a->id, b->id, e->kind);
				}
			}
		}
	}
}

/* Every member is frozen: each writes its image into the generation's
 * temporary directory. */
static void dump_round(struct coord *cd)
{
	char esc[PATH_MAX * 3];

	/* The DUMP line must hold it with the rest, whole. */
	if (co_escape(cd->tmpdir, esc, sizeof(esc)) || strlen(esc) > CO_LINE_MAX - 512) {
		fail_ckpt(cd, "directory name too long");
		finish(cd, 0);
		return;
	}
	cd->phase = DUMPING;
	cd->round_at = now_sec();
	pair_ends(cd);
	for (int i = 0; i < cd->ncl; i++) {
		struct client *c = cd->cl[i];
		if (!c->member || c->st != M_FROZEN)
			continue;
		snprintf(c->file, sizeof(c->file), "ckpt_%s_%d.ckpt%s", c->program, c->id,
			 co_image_suffix(cd->set.compress));
		c->st = M_DUMPING;
		say(c, "DUMP %d %s %s %s %lld", cd->gen, esc, c->file, zio_name(cd->set.compress),
		    cd->set.save_max);
	}
}

static void progress(struct coord *cd);

/* Every image is written: the barrier is over.  The programs go on while
 * the images reach the disk, unless they are to die once the generation
 * is safe.  The generation's members are noted for its restart script. */
static void sync_round(struct coord *cd)
{
	cd->phase = SYNCING;
	cd->round_at = now_sec();
	cd->ngm = 0;
	for (int i = 0; i < cd->ncl; i++) {
		struct client *c = cd->cl[i];
		if (!c->member || (c->st != M_DUMPED && c->st != M_SYNCED))
			continue;
		struct co_gen_member *g = &cd->gm[cd->ngm++];
		*g = (struct co_gen_member){.id = c->id};
		snprintf(g->host, sizeof(g->host), "%s", c->host);
		snprintf(g->program, sizeof(g->program), "%s", c->program);
		snprintf(g->file, sizeof(g->file), "%s", c->file);
		g->id = c->id;
		if (!cd->kill_after) {
			say(c, "RESUME %d RUN", cd->gen);
			c->resumed = 1;
		}
		if (c->st == M_DUMPED) {
			c->st = M_SYNCING;
			say(c, "SYNC %d", cd->gen);
		}
	}
	progress(cd);
}

/* Move the checkpoint on once no member is still busy with a round. */
static void progress(struct coord *cd)
{
	if (cd->phase == IDLE)
		return;
	for (int i = 0; i < cd->ncl; i++)
		if (in_work(cd->cl[i]))
			return;
	if (cd->failure[0]) {
		finish(cd, 0);
		return;
	}
	if (cd->phase == FREEZING) {
		dump_round(cd);
		return;
	}
	if (cd->phase == DUMPING) {
		sync_round(cd);
		return;
	}
	if (commit(cd)) {
		fail_ckpt(cd, "%s", err_get());
		finish(cd, 0);
		return;
	}
	finish(cd, 1);
}

/* A round took longer than --timeout: name who did not answer, let every
 * member go.  A late answer then gets an error; the helper has let its
 * program go on the RESUME it finds after its work. */
static void give_up(struct coord *cd)
{
	static const char *const round[] = {"", "FREEZE", "DUMP", "SYNC"};

	for (int i = 0; i < cd->ncl; i++) {
		struct client *c = cd->cl[i];
		if (in_work(c))
			fail_ckpt(cd, "%s did not answer %s within %d s", who(c), round[cd->phase],
				  cd->set.timeout);
	}
	finish(cd, 0);
}

static void start_ckpt(struct coord *cd, struct client *asker, int wait, int kill_after)
{
	int *g, n;

	if (cd->phase != IDLE) {
		/* One at a time: a second request joins the one under way. */
		if (asker && wait)
			asker->waits = 1;
		else if (asker)
			say(asker, "OK %d", cd->gen);
		return;
	}
	if (!nmembers(cd)) {
		if (asker)
			say(asker, "ERR no members to checkpoint");
		return;
	}
	g = list_gens(cd, &n, 0);
	cd->gen = (n ? g[n - 1] : 0) + 1;
	if (cd->gen <= cd->last_gen)
		cd->gen = cd->last_gen + 1;
	free(g);
	snprintf(cd->tmpdir, sizeof(cd->tmpdir), "%s/.ckpt_gen_%06d.tmp", cd->set.dir, cd->gen);
	/* A generation a failed checkpoint could not clear (a late file in
	 * it) is nobody's: clear it again rather than fail every later one. */
	rm_tree(cd->tmpdir);
	if (mkdir(cd->tmpdir, 0700)) {
		err_sys("cannot make %s", cd->tmpdir);
		cd->tmpdir[0] = 0;
		if (asker)
			say(asker, "ERR %s", err_get());
		warnx("checkpoint %d: %s", cd->gen, err_get());
		return;
	}
	cd->phase = FREEZING;
	cd->round_at = now_sec();
	cd->kill_after = kill_after;
	cd->failure[0] = 0;
	for (int i = 0; i < cd->ncl; i++) {
		struct client *c = cd->cl[i];
		if (!c->member || c->dead)
			continue;
		c->st = M_FREEZING;
		c->nends = 0;
		c->links = 0;
		say(c, "FREEZE %d", cd->gen);
	}
	if (asker && wait)
		asker->waits = 1;
	else if (asker)
		say(asker, "OK %d", cd->gen);
	progress(cd);
}

/* A line for the log about a connection refused or dropped: once a
 * second at most, with how many were refused since the coordinator
 * started (someone knocking must not fill the disk). */
static void __attribute__((format(printf, 2, 3))) warn_refused(struct coord *cd, const char *fmt, ...)
{
	double now = now_sec();
	char msg[256];
	va_list ap;

	cd->refused++;
	if (now - cd->refused_at < 1)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	warnx("%s (%ld refused in all)", msg, cd->refused);
	cd->refused_at = now;
}

/* Failed proofs of the secret, by address: each failure doubles the
 * time the address must wait before its next try (1 s, 2 s, ... 64 s),
 * so that guessing the secret costs time, not just connections. */
static struct penalty *penalty_of(struct coord *cd, const char *addr, int make)
{
	struct penalty *oldest = &cd->pen[0];

	for (int i = 0; i < PENALTIES; i++) {
		if (!strcmp(cd->pen[i].addr, addr))
			return &cd->pen[i];
		if (cd->pen[i].until < oldest->until)
			oldest = &cd->pen[i];
	}
	if (!make)
		return NULL;
	*oldest = (struct penalty){.until = 0};
	snprintf(oldest->addr, sizeof(oldest->addr), "%s", addr);
	return oldest;
}

static int unauthed_from(struct coord *cd, const char *addr, struct client **oldest)
{
	int n = 0;

	*oldest = NULL;
	for (int i = 0; i < cd->ncl; i++) {
		struct client *c = cd->cl[i];
		if (c->authed || c->dead)
			continue;
		if (!*oldest || c->since < (*oldest)->since)
			*oldest = c;
		n += !addr || !strcmp(c->addr, addr);
	}
	return n;
}

/* The other end's address, as text. */
static int peer_addr(int fd, char *out, size_t size)
{
	struct sockaddr_storage a;
	socklen_t len = sizeof(a);
	const void *in = &((struct sockaddr_in *)&a)->sin_addr;

	if (getpeername(fd, (struct sockaddr *)&a, &len))
		return -1;
	if (a.ss_family == AF_INET6)
		in = &((struct sockaddr_in6 *)&a)->sin6_addr;
	return inet_ntop(a.ss_family, in, out, size) ? 0 : -1;
}

/* --- the requests: one function per verb, dispatched by handle() --- */

/* HELLO client-nonce: the coordinator's half of the challenge-response,
 * unless the address is waiting out its failed proofs. */
static void on_hello(struct coord *cd, struct client *c, const struct co_msg *m)
{
	char proof[2 * SHA256_LEN + 1];
	struct penalty *p = penalty_of(cd, c->addr, 0);

	if (p && p->until > now_sec()) {
		say(c, "ERR %d failed proofs from %s: try again in %.0f s", p->fails, c->addr,
		    p->until - now_sec() + 0.5);
		warn_refused(cd, "client %d (%s) refused: %d failed proofs of the secret", c->fd,
			     c->addr, p->fails);
		c->dead = 1;
		return;
	}
	if (strlen(m->argv[0]) != 2 * CO_NONCE || c->nonce_c[0] || co_nonce(c->nonce_s)) {
		say(c, "ERR HELLO takes one nonce of %d hex digits, once", 2 * CO_NONCE);
		c->dead = 1;
		return;
	}
	snprintf(c->nonce_c, sizeof(c->nonce_c), "%s", m->argv[0]);
	co_proof(cd->set.secret, "ckpt-coord", c->nonce_c, c->nonce_s, proof);
	say(c, "CHALLENGE %s %s", c->nonce_s, proof);
}

/* A wrong proof: the address waits twice as long as after its last one
 * before it may try again (1 s, 2 s, ... 64 s). */
static void auth_failed(struct coord *cd, struct client *c)
{
	struct penalty *p = penalty_of(cd, c->addr, 1);

	p->fails++;
	p->until = now_sec() + (1 << (p->fails < 7 ? p->fails - 1 : 6));
	warnx("client %d (%s): wrong secret; refused", c->fd, c->addr);
	say(c, "ERR wrong secret");
	c->nonce_s[0] = 0; /* said: not "left without proving" */
	c->dead = 1;
}

/* AUTH client-proof: the client's half, over the nonces of its HELLO. */
static void on_auth(struct coord *cd, struct client *c, const struct co_msg *m)
{
	char want[2 * SHA256_LEN + 1];
	struct penalty *p;

	if (c->nonce_s[0])
		co_proof(cd->set.secret, "ckpt-client", c->nonce_s, c->nonce_c, want);
	if (!c->nonce_s[0] || !co_secret_eq(m->argv[0], want)) {
		auth_failed(cd, c);
		return;
	}
	p = penalty_of(cd, c->addr, 0);
	if (p)
		*p = (struct penalty){.until = 0};
	c->authed = 1;
	say(c, "OK");
}

/* Each byte of s not in ok becomes with. */
static void keep_only(char *s, const char *ok, char with)
{
	for (; *s; s++)
		if (!strchr(ok, *s))
			*s = with;
}

/* JOIN pid helper-pid host program [id] */
static void on_join(struct coord *cd, struct client *c, const struct co_msg *m)
{
	if (c->member) {
		say(c, "ERR already joined as member %d", c->id);
		return;
	}
	c->member = 1;
	c->st = M_OUT;
	c->id = join_id(cd, m->argc > 4 ? (int)co_num(m->argv[4], INT_MAX) : 0);
	c->pid = (long)co_num(m->argv[0], INT_MAX);
	c->helper = (long)co_num(m->argv[1], INT_MAX);
	/* A host name goes to ssh in the restart script: no option (a
	 * leading '-') and nothing a shell or ssh reads specially. */
	snprintf(c->host, sizeof(c->host), "%s", m->argv[2]);
	keep_only(c->host, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.:_[]",
		  '_');
	if (c->host[0] == '-')
		c->host[0] = '_';
	/* The program's name goes into file names: keep it tame. */
	snprintf(c->program, sizeof(c->program), "%s", m->argv[3]);
	keep_only(c->program, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.",
		  '-');
	cd->had_member = 1;
	say(c, "OK %d", c->id);
	warnx("%s joined", who(c));
}

/* Whether a member's report on a round (FROZEN, DUMPED, SYNCED, FAILED)
 * is to be taken: it is about the checkpoint under way, the member is in
 * it, and it is the report the member's state waits for (in_turn); if
 * not, the member is told why. */
static int take_report(struct coord *cd, struct client *c, const struct co_msg *m, int in_turn)
{
	long long gen = co_num(m->argv[0], CO_NUM_MAX);

	if (cd->phase == IDLE || gen != cd->gen || c->st == M_OUT) {
		say(c, "ERR %s: no checkpoint %lld under way for this member",
		    co_verb_name(m->verb), gen);
		return 0;
	}
	if (!in_turn) {
		say(c, "ERR %s out of turn", co_verb_name(m->verb));
		return 0;
	}
	return 1;
}

/* FROZEN gen */
static void on_frozen(struct coord *cd, struct client *c, const struct co_msg *m)
{
	if (!take_report(cd, c, m, c->st == M_FREEZING))
		return;
	c->st = M_FROZEN;
	progress(cd);
}

/* DUMPED gen bytes */
static void on_dumped(struct coord *cd, struct client *c, const struct co_msg *m)
{
	if (!take_report(cd, c, m, c->st == M_DUMPING))
		return;
	c->st = M_DUMPED;
	progress(cd);
}

/* SYNCED gen bytes crc32c: the generation notes the image's size and
 * CRC-32C, for commit() to check.  Unasked (M_DUMPED): a helper whose
 * program exited syncs its image before it goes. */
static void on_synced(struct coord *cd, struct client *c, const struct co_msg *m)
{
	if (!take_report(cd, c, m, c->st == M_SYNCING || c->st == M_DUMPED))
		return;
	c->st = M_SYNCED;
	for (int i = 0; i < cd->ngm; i++)
		if (cd->gm[i].id == c->id) {
			cd->gm[i].synced = 1;
			cd->gm[i].bytes = (uint64_t)co_num(m->argv[1], CO_NUM_MAX);
			cd->gm[i].crc = (uint32_t)co_num(m->argv[2], UINT32_MAX);
		}
	progress(cd);
}

/* FAILED gen message... */
static void on_failed(struct coord *cd, struct client *c, const struct co_msg *m)
{
	if (!take_report(cd, c, m, 1))
		return;
	fail_ckpt(cd, "%s: %s", who(c), m->argv[1]);
	c->st = M_FAILED;
	progress(cd);
}

/* END gen kind local remote: an end of the member's whose other end is
 * outside its tree, reported before its FROZEN. */
static void on_end(struct coord *cd, struct client *c, const struct co_msg *m)
{
	struct cd_end *e;

	if (!take_report(cd, c, m, c->st == M_FREEZING))
		return;
	if (c->nends >= 4096 || !(e = realloc(c->ends, (c->nends + 1) * sizeof(*e)))) {
		fail_ckpt(cd, "%s: too many connections", who(c));
		return;
	}
	c->ends = e;
	e += c->nends++;
	*e = (struct cd_end){.paired = 0};
	snprintf(e->kind, sizeof(e->kind), "%s", m->argv[1]);
	snprintf(e->local, sizeof(e->local), "%s", m->argv[2]);
	snprintf(e->remote, sizeof(e->remote), "%s", m->argv[3]);
}

/* The rendezvous of a restarted connection, made if asked. */
static struct cd_rv *rv_of(struct coord *cd, const char *token, int make)
{
	struct cd_rv *r;

	for (int i = 0; i < cd->nrv; i++)
		if (!strcmp(cd->rv[i].token, token))
			return &cd->rv[i];
	if (!make || strlen(token) >= sizeof(r->token) || cd->nrv >= 65536 ||
	    !(r = realloc(cd->rv, (cd->nrv + 1) * sizeof(*r))))
		return NULL;
	cd->rv = r;
	r += cd->nrv++;
	*r = (struct cd_rv){.port = 0};
	snprintf(r->token, sizeof(r->token), "%s", token);
	return r;
}

/* Tell the connecting end of r where to connect, once both have come. */
static void rv_meet(struct coord *cd, struct cd_rv *r)
{
	char a[240];

	if (!r->port || !r->wanter || co_escape(r->addr, a, sizeof(a)))
		return;
	for (int i = 0; i < cd->ncl; i++) {
		struct client *c = cd->cl[i];
		if (c->member && !c->dead && c->id == r->wanter) {
			say(c, "CONNECT %s %s %d", r->token, a, r->port);
			r->wanter = 0;
			return;
		}
	}
}

/* LISTEN token addr port: a restarted member accepts connection token
 * there. */
static void on_listen(struct coord *cd, struct client *c, const struct co_msg *m)
{
	struct cd_rv *r = rv_of(cd, m->argv[0], 1);
	long long port = co_num(m->argv[2], 65535);

	if (!r || port <= 0 || strlen(m->argv[1]) >= sizeof(r->addr)) {
		say(c, "ERR LISTEN: cannot take it");
		return;
	}
	snprintf(r->addr, sizeof(r->addr), "%s", m->argv[1]);
	r->port = (int)port;
	rv_meet(cd, r);
}

/* WANT token: a restarted member connects connection token; answered
 * CONNECT once its other end listens. */
static void on_want(struct coord *cd, struct client *c, const struct co_msg *m)
{
	struct cd_rv *r = rv_of(cd, m->argv[0], 1);

	if (!r) {
		say(c, "ERR WANT: cannot take it");
		return;
	}
	r->wanter = c->id;
	rv_meet(cd, r);
}

/* PID pid: the program is now this process */
static void on_pid(struct coord *cd, struct client *c, const struct co_msg *m)
{
	(void)cd;
	c->pid = (long)co_num(m->argv[0], INT_MAX);
	warnx("%s: the program runs as this pid now", who(c));
}

/* GONE wait-status */
static void on_gone(struct coord *cd, struct client *c, const struct co_msg *m)
{
	(void)cd;
	(void)m;
	warnx("%s exited", who(c));
	c->dead = 1;
}

/* CHECKPOINT [WAIT] [KILL] */
static void on_checkpoint(struct coord *cd, struct client *c, const struct co_msg *m)
{
	int wait = 0, kill_after = 0;

	for (int i = 0; i < m->argc; i++) {
		if (!strcmp(m->argv[i], "WAIT"))
			wait = 1;
		else if (!strcmp(m->argv[i], "KILL"))
			kill_after = 1;
		else {
			say(c, "ERR CHECKPOINT: unknown argument (WAIT or KILL)");
			return;
		}
	}
	start_ckpt(cd, c, wait, kill_after);
}

/* STATUS's hosts: each member's id and host, "1@h1,2@h2" ("-": none),
 * as many as fit in out. */
static void member_hosts(const struct coord *cd, char *out, size_t size)
{
	size_t len = 0;

	for (int i = 0; i < cd->ncl; i++) {
		const struct client *o = cd->cl[i];
		int n;
		if (!o->member || o->dead)
			continue;
		n = snprintf(out + len, size - len, "%s%d@%s", len ? "," : "", o->id, o->host);
		if (n < 0 || (size_t)n >= size - len)
			break;
		len += n;
	}
	out[len] = 0;
	if (!len)
		snprintf(out, size, "-");
}

/* STATUS */
static void on_status(struct coord *cd, struct client *c, const struct co_msg *m)
{
	char esc[PATH_MAX * 3], hosts[1024], hesc[1024 * 3], conns[1024];

	(void)m;
	if (co_escape(cd->set.dir, esc, sizeof(esc)))
		snprintf(esc, sizeof(esc), "-");
	member_hosts(cd, hosts, sizeof(hosts));
	if (co_escape(hosts, hesc, sizeof(hesc)))
		snprintf(hesc, sizeof(hesc), "-");
	conns_text(cd, conns, sizeof(conns));
	say(c,
	    "OK members=%d state=%s gen=%d last=%lld interval=%d keep=%d compress=%s "
	    "timeout=%d dir=%s hosts=%s connections=%s",
	    nmembers(cd), cd->phase == IDLE ? "idle" : "checkpointing", cd->last_gen,
	    (long long)cd->last_time, cd->set.interval, cd->set.keep, zio_name(cd->set.compress),
	    cd->set.timeout, esc, hesc, conns);
}

/* LIST: a MEMBER line for each member, then OK and how many. */
static void on_list(struct coord *cd, struct client *c, const struct co_msg *m)
{
	(void)m;
	for (int i = 0; i < cd->ncl; i++) {
		struct client *o = cd->cl[i];
		char h[800], p[200];
		if (!o->member || o->dead)
			continue;
		if (co_escape(o->host, h, sizeof(h)) || co_escape(o->program, p, sizeof(p)))
			continue;
		say(c, "MEMBER %d %ld %ld %s %s", o->id, o->pid, o->helper, h, p);
	}
	say(c, "OK %d", nmembers(cd));
}

/* INTERVAL seconds (0: none) */
static void on_interval(struct coord *cd, struct client *c, const struct co_msg *m)
{
	long long seconds = co_num(m->argv[0], CO_NUM_MAX);

	if (seconds > 86400 * 365) {
		say(c, "ERR INTERVAL: over a year");
		return;
	}
	cd->set.interval = (int)seconds;
	cd->next_at = cd->set.interval ? now_sec() + cd->set.interval : 0;
	say(c, "OK %d", cd->set.interval);
}

/* KILL: every member's program, between checkpoints. */
static void on_kill(struct coord *cd, struct client *c, const struct co_msg *m)
{
	(void)m;
	if (cd->phase != IDLE) {
		say(c, "ERR a checkpoint is under way; try again when it ends");
		return;
	}
	for (int i = 0; i < cd->ncl; i++)
		if (cd->cl[i]->member && !cd->cl[i]->dead)
			say(cd->cl[i], "RESUME 0 KILL");
	say(c, "OK %d", nmembers(cd));
}

/* QUIT */
static void on_quit(struct coord *cd, struct client *c, const struct co_msg *m)
{
	(void)m;
	say(c, "OK");
	cd->quit = 1;
}

/* What the coordinator serves, by verb, and who may ask: anyone (the
 * challenge-response, which needs the coordinator to have a secret), or
 * only a client that has proved the secret (or needed not), some of them
 * only once it is a member.  A verb without a function is one the
 * coordinator sends. */
static const struct request {
	void (*serve)(struct coord *cd, struct client *c, const struct co_msg *m);
	int anyone, secret, member;
} requests[CO_NVERBS] = {
	[CO_HELLO] = {on_hello, .anyone = 1, .secret = 1},
	[CO_AUTH] = {on_auth, .anyone = 1, .secret = 1},
	[CO_JOIN] = {on_join},
	[CO_PID] = {on_pid, .member = 1},
	[CO_FROZEN] = {on_frozen, .member = 1},
	[CO_DUMPED] = {on_dumped, .member = 1},
	[CO_SYNCED] = {on_synced, .member = 1},
	[CO_FAILED] = {on_failed, .member = 1},
	[CO_GONE] = {on_gone, .member = 1},
	[CO_CHECKPOINT] = {on_checkpoint},
	[CO_STATUS] = {on_status},
	[CO_LIST] = {on_list},
	[CO_INTERVAL] = {on_interval},
	[CO_KILL] = {on_kill},
	[CO_QUIT] = {on_quit},
	[CO_END] = {on_end, .member = 1},
	[CO_LISTEN] = {on_listen, .member = 1},
	[CO_WANT] = {on_want, .member = 1},
};

/* One request from c: parsed, checked against who may make it, served. */
static void handle(struct coord *cd, struct client *c, char *line, size_t len)
{
	const struct request *rq;
	struct co_msg m;

	if (co_parse(line, len, &m)) {
		say(c, "ERR %s", err_get());
		return;
	}
	rq = &requests[m.verb];
	if (rq->secret && !cd->set.secret) {
		say(c, "ERR this coordinator has no secret");
		return;
	}
	if (!rq->anyone && !c->authed) {
		warnx("client %d: %s without the secret; refused", c->fd, co_verb_name(m.verb));
		say(c, "ERR this coordinator needs the shared secret first (AUTH)");
		c->dead = 1;
		return;
	}
	if (!rq->serve) {
		say(c, "ERR %s is sent by the coordinator, not to it", co_verb_name(m.verb));
		return;
	}
	if (rq->member && !c->member) {
		say(c, "ERR %s: not a member", co_verb_name(m.verb));
		return;
	}
	rq->serve(cd, c, &m);
}

static void drop(struct coord *cd, int i)
{
	struct client *c = cd->cl[i];

	if (c->member) {
		if (c->st != M_OUT && c->st != M_SYNCED)
			fail_ckpt(cd, "%s left during the checkpoint", who(c));
		if (!c->dead || c->st != M_OUT)
			warnx("%s left", who(c));
	}
	if (!c->authed && c->nonce_s[0])
		warnx("client %d: left without proving the secret (a wrong secret?)", c->fd);
	close(c->fd);
	free(c->ends);
	free(c);
	cd->cl[i] = cd->cl[--cd->ncl];
	progress(cd);
}

static void accept_client(struct coord *cd)
{
	int fd = accept4(cd->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC), local;
	struct client *c;
	uid_t uid;

	if (fd < 0)
		return;
	if (cd->ncl == MAX_CLIENTS || !(c = calloc(1, sizeof(*c)))) {
		warn_refused(cd, "too many clients; one refused");
		close(fd);
		return;
	}
	c->fd = fd;
	c->r.fd = fd;
	/* Only this user, from this host (the kernel says who owns the
	 * other end); from elsewhere, only through the secret. */
	local = co_peer_uid(fd, &uid);
	if (local < 0 || (local && uid != geteuid()) || (!local && !cd->set.secret)) {
		if (local > 0) {
			say(c, "ERR uid %u is not this coordinator's user; refused", (unsigned)uid);
			warn_refused(cd, "a connection from uid %u refused: not this coordinator's user",
				     (unsigned)uid);
		} else {
			say(c, "ERR not from this host, and no secret to prove it with; refused");
			warn_refused(cd, "a connection refused: not from this host, no secret");
		}
		goto refuse;
	}
	c->authed = !cd->set.secret;
	c->since = now_sec();
	if (peer_addr(fd, c->addr, sizeof(c->addr)))
		goto refuse;
	/* Until it has proved the secret a client holds little: a few
	 * connections an address, and a bounded pool for all, the oldest
	 * dropped for a newcomer; the rest is kept for members and the
	 * clients that proved it. */
	if (!c->authed) {
		struct client *oldest;
		if (unauthed_from(cd, c->addr, &oldest) >= UNAUTH_PER_ADDR) {
			say(c, "ERR too many connections from %s without the secret; refused", c->addr);
			warn_refused(cd, "a connection from %s refused: %d already without the secret",
				     c->addr, UNAUTH_PER_ADDR);
			goto refuse;
		}
		if (unauthed_from(cd, NULL, &oldest) >= UNAUTH_MAX && oldest) {
			say(oldest, "ERR dropped: the secret not proved while others wait");
			warn_refused(cd, "client %d (%s) dropped: %d connections without the secret",
				     oldest->fd, oldest->addr, UNAUTH_MAX);
			oldest->dead = 1;
		}
	}
	cd->cl[cd->ncl++] = c;
	return;
refuse:
	close(fd);
	free(c);
}

static void serve_client(struct coord *cd, struct client *c)
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
		handle(cd, c, line, c->r.line_len);
	}
}

static int listen_on(struct coord *cd)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(cd->set.port)};
	const char *addr = cd->set.bind ? cd->set.bind : "127.0.0.1";
	socklen_t len = sizeof(a);
	int one = 1;

	if (inet_pton(AF_INET, addr, &a.sin_addr) != 1) {
		err_set("not an IPv4 address: %s", addr);
		return -1;
	}
	cd->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (cd->lfd < 0) {
		err_sys("cannot make a socket");
		return -1;
	}
	setsockopt(cd->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(cd->lfd, (struct sockaddr *)&a, sizeof(a)) || listen(cd->lfd, 64) ||
	    getsockname(cd->lfd, (struct sockaddr *)&a, &len)) {
		err_sys("cannot listen on %s:%d", addr, cd->set.port);
		close(cd->lfd);
		return -1;
	}
	cd->set.port = ntohs(a.sin_port);
	return 0;
}

struct coord *cd_open(const struct cd_settings *s)
{
	struct coord *cd = calloc(1, sizeof(*cd));
	int *g, n;

	if (!cd) {
		err_set("out of memory");
		return NULL;
	}
	cd->set = *s;
	if (listen_on(cd)) {
		free(cd);
		return NULL;
	}
	g = list_gens(cd, &n, 1);
	cd->last_gen = n ? g[n - 1] : 0;
	free(g);
	return cd;
}

int cd_port(const struct coord *cd)
{
	return cd->set.port;
}

/* Drop the clients that are gone, and those that have not proved the
 * secret in AUTH_WAIT seconds. */
static void drop_dead(struct coord *cd)
{
	for (int i = cd->ncl; i-- > 0;) {
		struct client *c = cd->cl[i];
		if (!c->dead && !c->authed && now_sec() - c->since > AUTH_WAIT) {
			warnx("client %d: no secret in %d seconds; dropped", c->fd, AUTH_WAIT);
			c->dead = 1;
		}
		if (c->dead)
			drop(cd, i);
	}
}

/* A poll timeout (ms, -1: none) that also wakes left seconds from now. */
static int sooner(int timeout, double left)
{
	if (timeout < 0 || (int)(left * 1000) + 1 < timeout)
		return (int)(left * 1000) + 1;
	return timeout;
}

/* Wait up to timeout ms for connections and requests, and serve them;
 * -1 with err_set if poll fails. */
static int serve_clients(struct coord *cd, int timeout)
{
	struct pollfd pfd[MAX_CLIENTS + 1];
	int n = cd->ncl;

	pfd[0].fd = cd->lfd;
	pfd[0].events = POLLIN;
	for (int i = 0; i < n; i++) {
		pfd[i + 1].fd = cd->cl[i]->fd;
		pfd[i + 1].events = POLLIN;
	}
	if (poll(pfd, n + 1, timeout) < 0) {
		if (errno == EINTR)
			return 0;
		err_sys("poll");
		return -1;
	}
	for (int i = 0; i < n; i++)
		if (pfd[i + 1].revents)
			serve_client(cd, cd->cl[i]);
	if (pfd[0].revents & POLLIN)
		accept_client(cd);
	return 0;
}

int cd_run(struct coord *cd)
{
	cd->started = now_sec();
	warnx("listening on %s:%d, checkpoints in %s", cd->set.bind ? cd->set.bind : "127.0.0.1",
	      cd->set.port, cd->set.dir);
	if (cd->set.interval)
		cd->next_at = now_sec() + cd->set.interval;
	while (!cd->quit) {
		int timeout = -1;

		drop_dead(cd);
		/* Wake to drop a client that has not authenticated in time. */
		for (int i = 0; i < cd->ncl; i++)
			if (!cd->cl[i]->authed)
				timeout = 1000;
		if (cd->set.exit_on_last && cd->had_member && !nmembers(cd) && cd->phase == IDLE)
			break;
		/* Started for members that never came (their program exited
		 * before its helper joined): do not wait for ever. */
		if (cd->set.exit_on_last && !cd->had_member &&
		    now_sec() - cd->started > NOBODY_CAME) {
			warnx("no member joined in %d seconds", NOBODY_CAME);
			break;
		}
		if (cd->set.exit_on_last && !cd->had_member)
			timeout = 1000;
		if (cd->phase != IDLE && cd->set.timeout) {
			double left = cd->round_at + cd->set.timeout - now_sec();
			if (left <= 0) {
				give_up(cd);
				continue;
			}
			timeout = sooner(timeout, left);
		}
		if (cd->set.interval && cd->next_at) {
			double left = cd->next_at - now_sec();
			if (left <= 0) {
				cd->next_at = now_sec() + cd->set.interval;
				start_ckpt(cd, NULL, 0, 0);
				continue;
			}
			timeout = sooner(timeout, left);
		}
		if (serve_clients(cd, timeout))
			return -1;
	}
	if (cd->phase != IDLE) {
		fail_ckpt(cd, "the coordinator was told to quit");
		finish(cd, 0);
	}
	warnx("exiting");
	return 0;
}
