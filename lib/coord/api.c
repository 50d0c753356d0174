/* api.c: the member's side of ckpt.h(3), hooks and --notify: the unix
 * socket a program run by ckpt-inject asks on ($CKPT_API), served by its
 * helper; the programs the helper runs around a checkpoint; and what an
 * image keeps beside it for its restart (ckpt_NAME_ID.member).
 *
 * Trust: the socket is in a directory made mode 0700 by this user (one
 * found there already must be this user's alone), and every connection's
 * SO_PEERCRED uid must be ours: no other local user can ask. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "coord/coord.h"
#include "base/base.h"
#include "io/io.h"

/* dir made (or found) as this user's alone. */
static int own_dir(const char *dir)
{
	struct stat sb;

	if (mkdir(dir, 0700) && errno != EEXIST) {
		err_sys("cannot make %s", dir);
		return -1;
	}
	if (lstat(dir, &sb) || !S_ISDIR(sb.st_mode) || sb.st_uid != geteuid() ||
	    (sb.st_mode & 077)) {
		err_set("%s: not a directory of this user's alone: refused", dir);
		return -1;
	}
	return 0;
}

/* The API directories in run of this user's helpers killed before they
 * could remove theirs (SIGKILL): a socket no process listens on (not in
 * /proc/net/unix), in a directory a minute old (not one a helper has
 * just made and not yet bound in).  A restart makes its own again. */
static void sweep(const char *run)
{
	char *listening = read_file("/proc/net/unix", NULL), dir[PATH_MAX], sock[PATH_MAX + 8];
	DIR *d = listening ? opendir(run) : NULL;
	struct dirent *e;
	struct stat sb;

	while (d && (e = readdir(d))) {
		if (strncmp(e->d_name, "ckpt-api-", 9))
			continue;
		snprintf(dir, sizeof(dir), "%s/%s", run, e->d_name);
		snprintf(sock, sizeof(sock), " %s/sock\n", dir);
		if (lstat(dir, &sb) || !S_ISDIR(sb.st_mode) || sb.st_uid != geteuid() ||
		    sb.st_mtime > time(NULL) - 60 || strstr(listening, sock))
			continue;
		snprintf(sock, sizeof(sock), "%s/sock", dir);
		unlink(sock);
		rmdir(dir);
	}
	if (d)
		closedir(d);
	free(listening);
}

/* Whether a helper answers on path: not one to take over. */
static int answered(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0), ok;

	memcpy(sa.sun_path, path, strlen(path));
	ok = fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
	if (fd >= 0)
		close(fd);
	return ok;
}

int mb_api_open(struct mb_api *a, const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	const char *run = getenv("XDG_RUNTIME_DIR");
	char *slash;

	a->lfd = -1;
	if (path) {
		if (strlen(path) >= sizeof(a->path) || !(slash = strrchr(path, '/'))) {
			err_set("not a path for the API's socket: %s", path);
			return -1;
		}
		snprintf(a->path, sizeof(a->path), "%s", path);
		snprintf(a->dir, sizeof(a->dir), "%.*s", (int)(slash - path), path);
		if (own_dir(a->dir))
			return -1;
		/* The program restored while it runs on (a second copy): its
		 * helper keeps its socket, and the copy goes without. */
		if (answered(a->path)) {
			err_set("%s: another helper answers there", a->path);
			return -1;
		}
		unlink(a->path); /* the socket of the helper before the restart */
	} else {
		if (!run || access(run, W_OK) || strlen(run) > 60)
			run = "/tmp";
		sweep(run);
		snprintf(a->dir, sizeof(a->dir), "%s/ckpt-api-XXXXXX", run);
		if (!mkdtemp(a->dir)) {
			err_sys("cannot make a directory in %s", run);
			return -1;
		}
		snprintf(a->path, sizeof(a->path), "%.90s/sock", a->dir); /* run: 60 at most */
	}
	memcpy(sa.sun_path, a->path, strlen(a->path));
	a->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (a->lfd < 0 || bind(a->lfd, (struct sockaddr *)&sa, sizeof(sa)) || listen(a->lfd, 16)) {
		err_sys("cannot listen on %s", a->path);
		mb_api_close(a);
		return -1;
	}
	return 0;
}

void mb_api_close(struct mb_api *a)
{
	if (a->lfd >= 0) {
		close(a->lfd);
		unlink(a->path);
		rmdir(a->dir);
	}
	a->lfd = -1;
	for (int i = 0; i < a->nconn; i++)
		close(a->conn[i]);
	a->nconn = 0;
}

/* The answer to one request line. */
static void answer(struct mb_helper *h, char *req, char *out, size_t size)
{
	struct mb_api *a = &h->api;
	unsigned long n;
	int pid;

	if (!strcmp(req, "CHECKPOINT")) {
		if (a->delay) {
			snprintf(out, size,
				 "ERR checkpoints are held off by ckpt_delay() (depth %d): a checkpoint "
				 "asked for now would wait for itself",
				 a->delay);
			return;
		}
		/* One asked for while one is under way joins it. */
		if (!a->asking) {
			if (co_send(h->sock, "CHECKPOINT WAIT")) {
				snprintf(out, size, "ERR %s", err_get());
				return;
			}
			a->asking = 1;
			a->ask++;
		}
		snprintf(out, size, "OK %d-%lu", (int)getpid(), a->ask);
	} else if (sscanf(req, "RESULT %d-%lu", &pid, &n) == 2) {
		/* Asked of the helper before a restart: this program was
		 * restarted from that checkpoint. */
		if (pid != getpid())
			snprintf(out, size, "OK RESTARTED %d", a->gen);
		else if (n == a->ask && a->asking)
			snprintf(out, size, "OK WAIT");
		else if (n == a->ask)
			snprintf(out, size, "%s", a->result);
		else
			snprintf(out, size, "ERR no such checkpoint asked for: %s", req + 7);
	} else if (!strcmp(req, "DELAY")) {
		snprintf(out, size, "OK %d %d", ++a->delay, a->timeout);
	} else if (!strcmp(req, "ALLOW")) {
		if (!a->delay)
			snprintf(out, size, "ERR ckpt_allow() without a ckpt_delay()");
		else
			snprintf(out, size, "OK %d", --a->delay);
	} else if (!strcmp(req, "STATUS")) {
		snprintf(out, size, "OK member=%d restarts=%d gen=%d delayed=%d timeout=%d",
			 a->member, a->restarts, a->gen, a->delay, a->timeout);
	} else {
		snprintf(out, size, "ERR unknown request (CHECKPOINT, RESULT, DELAY, ALLOW, STATUS)");
	}
}

/* One connection: only this user's; its one line, answered.  It stays
 * open until the program closes it (mb_api_busy). */
static void take(struct mb_helper *h, int fd)
{
	struct mb_api *a = &h->api;
	struct ucred cr;
	socklen_t len = sizeof(cr);
	struct pollfd p = {.fd = fd, .events = POLLIN};
	char req[256], out[700];
	size_t n = 0;

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) || cr.uid != geteuid() ||
	    a->nconn == MB_API_CONNS) {
		close(fd);
		return;
	}
	/* A request is one short write: a second is plenty. */
	while (n < sizeof(req) - 1 && poll(&p, 1, 1000) == 1) {
		ssize_t k = read(fd, req + n, sizeof(req) - 1 - n);
		if (k <= 0)
			break;
		n += k;
		if (memchr(req, '\n', n))
			break;
	}
	req[n] = 0;
	if (!strchr(req, '\n')) {
		close(fd);
		return;
	}
	*strchr(req, '\n') = 0;
	answer(h, req, out, sizeof(out));
	strcat(out, "\n");
	write_all(fd, out, strlen(out));
	a->conn[a->nconn++] = fd;
}

void mb_api_serve(struct mb_helper *h)
{
	int fd;

	if (h->api.lfd < 0)
		return;
	while ((fd = accept4(h->api.lfd, NULL, NULL, SOCK_CLOEXEC)) >= 0)
		take(h, fd);
}

int mb_api_busy(struct mb_helper *h)
{
	struct mb_api *a = &h->api;
	struct pollfd p = {.fd = a->lfd, .events = POLLIN};

	for (int i = a->nconn; i-- > 0;) {
		struct pollfd c = {.fd = a->conn[i], .events = POLLIN};
		char b[64];
		if (poll(&c, 1, 0) == 1 && read(a->conn[i], b, sizeof(b)) <= 0) {
			close(a->conn[i]);
			a->conn[i] = a->conn[--a->nconn];
		}
	}
	return a->nconn || (a->lfd >= 0 && poll(&p, 1, 0) == 1);
}

void mb_api_answer(struct mb_helper *h, const char *line)
{
	struct mb_api *a = &h->api;
	const char *p;
	char *end;

	if (!strncmp(line, "OK members=", 11)) {
		if ((p = strstr(line, " timeout=")))
			a->timeout = (int)strtol(p + 9, NULL, 10);
		if ((p = strstr(line, " dir="))) {
			snprintf(a->cdir, sizeof(a->cdir), "%s", p + 5);
			a->cdir[strcspn(a->cdir, " ")] = 0;
			if (co_unescape(a->cdir))
				a->cdir[0] = 0;
		}
		return;
	}
	if (!a->asking)
		return;
	/* CHECKPOINT WAIT's answer: "OK gen dir", or "ERR why". */
	if (!strncmp(line, "OK ", 3)) {
		int gen = (int)strtol(line + 3, &end, 10);
		snprintf(a->result, sizeof(a->result), "OK %d", gen);
		if (gen > a->gen)
			a->gen = gen;
	} else if (!strncmp(line, "ERR ", 4)) {
		snprintf(a->result, sizeof(a->result), "%.590s", line);
	} else {
		return;
	}
	a->asking = 0;
}

/* One hook: its wait status, or -1 if it could not be started. */
static int run_hook(struct mb_helper *h, const char *hook, const char *event, int gen)
{
	char num[32], dir[PATH_MAX + 32];
	pid_t pid;
	int st;

	snprintf(dir, sizeof(dir), "%s/ckpt_gen_%06d", h->api.cdir, gen);
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		setenv("CKPT_GEN_DIR", dir, 1);
		snprintf(num, sizeof(num), "%d", gen);
		setenv("CKPT_GEN", num, 1);
		snprintf(num, sizeof(num), "%d", (int)h->pid);
		setenv("CKPT_PID", num, 1);
		snprintf(num, sizeof(num), "%d", h->api.member);
		setenv("CKPT_MEMBER", num, 1);
		unsetenv("CKPT_API");
		signal(SIGPIPE, SIG_DFL);
		execl(hook, hook, event, (char *)NULL);
		_exit(127);
	}
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return -1;
	return st;
}

int mb_run_hooks(struct mb_helper *h, const char *event, int gen)
{
	for (int i = 0; i < h->api.nhook; i++) {
		int st = run_hook(h, h->api.hook[i], event, gen);
		if (st < 0) {
			err_sys("%s hook %s: cannot run it", event, h->api.hook[i]);
			return -1;
		}
		if (WIFEXITED(st) && WEXITSTATUS(st) == 127) {
			err_set("%s hook %s: cannot run it (status 127)", event, h->api.hook[i]);
			return -1;
		}
		if (WIFSIGNALED(st)) {
			err_set("%s hook %s: killed by signal %d", event, h->api.hook[i],
				WTERMSIG(st));
			return -1;
		}
		if (WEXITSTATUS(st)) {
			err_set("%s hook %s: exited with status %d", event, h->api.hook[i],
				WEXITSTATUS(st));
			return -1;
		}
	}
	return 0;
}

int mb_write_member(const struct mb_api *a, int gen, int dfd, const char *img_name)
{
	const char *p = strstr(img_name, ".ckpt");
	char name[NAME_MAX + 1], esc[PATH_MAX * 3];
	FILE *f;
	int fd, rc = 0;

	snprintf(name, sizeof(name), "%.*s.member", (int)(p ? p - img_name : (long)strlen(img_name)),
		 img_name);
	unlinkat(dfd, name, 0);
	fd = openat(dfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0 || !(f = fdopen(fd, "w"))) {
		err_sys("cannot create %s", name);
		if (fd >= 0)
			close(fd);
		return -1;
	}
	fprintf(f, "restarts %d\ngen %d\nnotify %d\n", a->restarts, gen, a->notify);
	if (a->lfd >= 0 && !co_escape(a->path, esc, sizeof(esc)))
		fprintf(f, "api %s\n", esc);
	for (int i = 0; i < a->nhook; i++)
		if (!co_escape(a->hook[i], esc, sizeof(esc)))
			fprintf(f, "hook %s\n", esc);
	if (fflush(f) || fsync(fd)) {
		err_sys("cannot write %s", name);
		rc = -1;
	}
	fclose(f);
	return rc;
}

int mb_read_member(struct mb_api *a, const char *img)
{
	char path[PATH_MAX + 16], line[CO_LINE_MAX], word[16], val[CO_LINE_MAX];
	char *base, *p;
	int keep_hooks = a->nhook > 0, keep_notify = a->notify > 0;
	struct stat sb;
	FILE *f;

	snprintf(path, sizeof(path), "%s", img);
	snprintf(a->img, sizeof(a->img), "%s", img);
	base = strrchr(path, '/');
	p = strstr(base ? base : path, ".ckpt");
	snprintf(p ? p : path + strlen(path), sizeof(path) - (p ? p - path : (long)strlen(path)),
		 ".member");
	f = fopen(path, "re");
	/* Written by this user's helper, or not taken. */
	if (!f || fstat(fileno(f), &sb) || sb.st_uid != geteuid() || (sb.st_mode & 022)) {
		if (f)
			fclose(f);
		return -1;
	}
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%15s %4095s", word, val) != 2 || co_unescape(val))
			continue;
		if (!strcmp(word, "restarts"))
			a->restarts = atoi(val) + 1;
		else if (!strcmp(word, "gen"))
			a->gen = atoi(val);
		else if (!strcmp(word, "notify") && !keep_notify)
			a->notify = atoi(val);
		else if (!strcmp(word, "api") && strlen(val) < sizeof(a->path))
			snprintf(a->path, sizeof(a->path), "%s", val);
		else if (!strcmp(word, "hook") && !keep_hooks && a->nhook < MB_HOOKS_MAX)
			a->hook[a->nhook++] = strdup(val);
	}
	fclose(f);
	return 0;
}
