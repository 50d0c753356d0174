/* coord.h: coordinated checkpoints: the protocol (co_), the coordinator daemon (coordd), the
 * restart script, and the member helper that ckpt-inject runs beside a program (mb_). */
#ifndef CKPT_COORD_H
#define CKPT_COORD_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "dump/dump.h"

/* ---- coord: the coordinator protocol, and what its three tools share.
 *
 * The protocol is text over TCP, one line per message ("VERB ARG...\n",
 * at most CO_LINE_MAX bytes, printable ASCII), readable with nc.  An
 * argument holding a space, a '%' or a byte outside '!'..'~' has it
 * written as %XX.  Every request gets one reply line, "OK ..." or
 * "ERR message", possibly after lines of data ("MEMBER ..."); see
 * ckpt-coord(1) for the whole list. */

#define CO_LINE_MAX 4096
#define CO_ARGS_MAX 8
#define CO_DEFAULT_PORT 7779
#define CO_DEFAULT_HOST "127.0.0.1"

enum co_verb {
	CO_BAD = 0,
	/* anyone */
	CO_HELLO,      /* HELLO client-nonce: the secret's challenge-response */
	CO_AUTH,       /* AUTH client-proof */
	/* a member's helper */
	CO_JOIN,       /* JOIN pid helper-pid host program [id] */
	CO_PID,        /* PID pid: the program is now this process */
	CO_FROZEN,     /* FROZEN gen */
	CO_DUMPED,     /* DUMPED gen bytes */
	CO_SYNCED,     /* SYNCED gen bytes crc32c: the image as it is on disk */
	CO_FAILED,     /* FAILED gen message... */
	CO_GONE,       /* GONE wait-status */
	/* ckpt-signal */
	CO_CHECKPOINT, /* CHECKPOINT [WAIT] [KILL] */
	CO_STATUS,     /* STATUS */
	CO_LIST,       /* LIST */
	CO_INTERVAL,   /* INTERVAL seconds */
	CO_KILL,       /* KILL */
	CO_QUIT,       /* QUIT */
	/* the coordinator to a helper */
	CO_FREEZE, /* FREEZE gen */
	CO_DUMP,   /* DUMP gen dir file compressor save-files-max */
	CO_RESUME, /* RESUME gen RUN|KILL */
	CO_SYNC,   /* SYNC gen */
	/* connections between members (coord/peers.c) */
	CO_END,	    /* END gen kind local remote: an end whose other end is outside the tree */
	CO_LINK,    /* LINK gen token side peer-id peer-name local remote: the end is paired */
	CO_LISTEN,  /* LISTEN token addr port: a restarted end accepts its connection there */
	CO_WANT,    /* WANT token: a restarted end asks where to connect */
	CO_CONNECT, /* CONNECT token addr port: there */
	CO_NVERBS
};

/* A parsed line: the verb and its arguments, unescaped and
 * NUL-terminated, pointing into buf. */
struct co_msg {
	enum co_verb verb;
	int argc;
	char *argv[CO_ARGS_MAX];
	char buf[CO_LINE_MAX + 1];
};

/* Parse one line (without its newline; a trailing '\r' is allowed).
 * -1 with err_set naming what is wrong: too long, a byte that is not
 * printable, an unknown verb, the wrong number of arguments, a number
 * that is not one. */
int co_parse(const char *line, size_t len, struct co_msg *m) __attribute__((warn_unused_result));
const char *co_verb_name(enum co_verb v);
/* s with spaces, '%' and non-printable bytes as %XX, into out (size
 * bytes); -1 if it does not fit. */
int co_escape(const char *s, char *out, size_t size);
/* Unescape s in place; -1 for a bad %XX or a %00. */
int co_unescape(char *s);
/* A decimal number in [0, max]; -1 if s is not one.  A numeric argument
 * of a message is one in [0, CO_NUM_MAX]. */
#define CO_NUM_MAX (1ll << 62)
long long co_num(const char *s, long long max);
/* The compressor a DUMP (or --compress) names: ZIO_ZSTD for "zstd",
 * ZIO_GZIP for "gzip", ZIO_NONE for "none"; -1 for anything else (the
 * 0 and 1 of the field's gzip-only days included). */
int co_compressor(const char *s);
/* The end of an image's name for it: ".zst", ".gz" or "". */
const char *co_image_suffix(int kind);

/* A line reader over a socket: co_read_line fills the buffer once (one
 * read) and hands out whole lines. */
struct co_reader {
	int fd;
	size_t len, used;
	size_t line_len; /* of the line co_next_line gave last (a NUL may be in it) */
	int skip; /* dropping the rest of a line that was too long */
	char buf[2 * CO_LINE_MAX];
};
/* The next whole line in r (its NUL-terminated text in *line, valid
 * until the next call): 1 when there is one, 0 when none is buffered
 * yet, -1 at end of stream or on error, -2 for a line over CO_LINE_MAX
 * (dropped up to its newline). */
int co_next_line(struct co_reader *r, char **line);
/* One read(2) into r: >0 bytes read, 0 at end of stream, -1 error. */
ssize_t co_fill(struct co_reader *r);
/* Block until a whole line arrives (timeout_ms < 0: forever); 1, or -1
 * with err_set (closed, timed out, too long). */
int co_read_line(struct co_reader *r, char **line, int timeout_ms);
/* printf a line (the newline is added) to fd; -1 with err_sys. */
int co_send(int fd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Where clients find the coordinator: the option if given, else
 * $CKPT_COORD_HOST / $CKPT_COORD_PORT, else 127.0.0.1:7779.  -1 with
 * err_set for a port that is not one. */
int co_addr(const char *host_opt, const char *port_opt, const char **host, int *port);
/* Connect (close-on-exec); -1 with errno ECONNREFUSED (or other) and
 * err_set "no coordinator at host:port: why". */
int co_connect(const char *host, int port) __attribute__((warn_unused_result));
/* The shared secret in path (first line), which must be a regular file
 * that only its owner may read or write; malloc'd, or NULL with err_set. */
char *co_read_secret(const char *path);
/* $CKPT_COORD_SECRET_FILE or opt: the secret, or NULL (none wanted); on a
 * bad file, *bad is set. */
char *co_client_secret(const char *opt, int *bad);
/* Compare two secrets in time that does not depend on where they differ. */
int co_secret_eq(const char *a, const char *b);
/* The uid that owns the other end of the TCP connection fd, where the
 * kernel of this network namespace has that end (a process on this
 * host): 1 with *uid; 0 for a peer elsewhere; -1 with err_set. */
int co_peer_uid(int fd, uid_t *uid);
/* Whether a is a loopback address (127/8, ::1). */
int co_loopback(const struct sockaddr *a);
/* The challenge-response over a shared secret: CO_NONCE random bytes as
 * hex, and a proof, HMAC-SHA-256(secret, who NUL first second) as hex;
 * the coordinator proves itself as "ckpt-coord" over (the client's
 * nonce, its own), a client as "ckpt-client" over (the coordinator's,
 * the client's). */
#define CO_NONCE 32
int co_nonce(char out[2 * CO_NONCE + 1]);
void co_proof(const char *secret, const char *who, const char *first, const char *second,
	      char out[2 * 32 + 1]);
/* r becomes the reader of fd; the coordinator must be ours (its socket's
 * owner on this host is our uid; elsewhere, only with a secret), and
 * with secret set, both prove they know it (HELLO, CHALLENGE, AUTH);
 * -1 with err_set. */
int co_auth(int fd, struct co_reader *r, const char *secret);

/* A client's options (ckpt-inject, ckpt-signal): --coord-host,
 * --coord-port and --secret-file, getopt_long's 'H', 'P' and 's'; and
 * what they come to. */
struct co_client {
	const char *host_opt, *port_opt, *secret_file;
	const char *host;
	int port;
	char *secret; /* NULL: none */
};
/* Their entries of getopt_long's table. */
/* clang-format off */
#define CO_CLIENT_LONGOPTS                                                                         \
	{"coord-host", required_argument, NULL, 'H'},                                              \
	{"coord-port", required_argument, NULL, 'P'},                                              \
	{"secret-file", required_argument, NULL, 's'}
/* clang-format on */
/* Note option c (getopt_long's) with its arg in cl: 1 if it is one of
 * those, else 0. */
int co_client_opt(struct co_client *cl, int c, const char *arg);
/* After the options: where the coordinator is (co_addr) and the secret
 * (co_client_secret); -1 with err_set. */
int co_client_setup(struct co_client *cl) __attribute__((warn_unused_result));

/* What a generation's restart script needs: the coordinator's settings
 * (its new coordinator gets the same), and each member's host and image
 * file (in the generation's directory on that host). */
/* A member whose image a generation holds: what restarts it. */
struct co_gen_member {
	char host[256], program[64], file[128];
	int id;
	int synced; /* its SYNCED came, with the image's size and CRC-32C: */
	uint64_t bytes;
	uint32_t crc;
};
struct co_script {
	int gen, port, interval, keep;
	int compress; /* enum zio_kind: ZIO_ZSTD, ZIO_GZIP or ZIO_NONE */
	long long save_max;
	const char *dir;
	/* The coordinator's --bind (NULL: loopback) and its --secret-file
	 * (absolute; NULL: none): the new one's, and the members' file. */
	const char *bind, *secret_file;
	const struct co_gen_member *m;
	int n;
};
/* Write dir/ckpt_restart_script.sh (mode 0755, synced); -1 with err_set. */
int co_write_script(const char *dir, const struct co_script *s)
	__attribute__((warn_unused_result));

/* The size and CRC-32C of the whole file at fd (read from offset 0): how
 * a helper's SYNCED names the image it wrote, and how the coordinator
 * checks it is there before a generation holds it.  -1 with err_set. */
int co_image_sum(int fd, uint64_t *bytes, uint32_t *crc);

/* The path of a sibling tool: beside this program's executable if it is
 * there, else name alone (for PATH). */
const char *co_tool(const char *name, char *buf, size_t size);
/* A connection to the coordinator at host:port, as co_connect gives one;
 * when none listens there and host is this host, a coordinator is started
 * first and waited for until it listens (ckpt-coord --daemon
 * --exit-on-last --port port, then opts: its options, a NULL-ended list
 * of at most 10), as for a computation's first member. */
int co_connect_or_start(const char *host, int port, char *const *opts)
	__attribute__((warn_unused_result));
/* A restarted member's name and id, from the name the coordinator gave
 * its image (ckpt_NAME_ID.ckpt[.zst|.gz]); else the file's name up to its
 * first dot, and id 0 (any). */
void co_image_member(const char *img, char *name, size_t size, int *id);
/* This host's name, for JOIN and the restart script. */
const char *co_hostname(void);

/* ---- coordd: the coordinator of one computation, as ckpt-coord runs it
 * (the protocol and the checkpoint rounds: ckpt-coord(1)). */

struct cd_settings {
	int port; /* 0: a free one */
	int exit_on_last, interval, keep;
	int compress; /* enum zio_kind: ZIO_ZSTD, ZIO_GZIP or ZIO_NONE */
	int timeout; /* seconds a round of a checkpoint may take; 0: no limit */
	long long save_max; /* bytes of each open file the images hold; 0: all */
	const char *bind;   /* NULL: 127.0.0.1 */
	const char *secret; /* NULL: none asked */
	const char *secret_file; /* where it was read (absolute), for the restart script */
	char dir[PATH_MAX]; /* absolute */
};

struct coord;

/* Listen as s says, and clear what a coordinator killed mid-checkpoint
 * left in s->dir; NULL with err_set. */
struct coord *cd_open(const struct cd_settings *s);
/* The port it listens on. */
int cd_port(const struct coord *cd);
/* Serve until told to QUIT (or, with exit_on_last, the last member has
 * gone); 0, or -1 with err_set. */
int cd_run(struct coord *cd);

/* ---- member: a member of a coordinated computation, as its helper sees it
 * (ckpt-inject's detached helper process; see ckpt-coord(1)). */

/* How the helper finds its program: the process that started it, once it
 * has exec'd the command (RUN); a running process (ATTACH); the program
 * ckpt-remap restores in the process that started it (RESTART: that
 * process itself, or its one child when the old pid was kept). */
enum mb_mode { MB_RUN, MB_ATTACH, MB_RESTART };

/* A member's API (ckpt.h(3)): the socket its program asks on, and what
 * the helper keeps for it; hooks and --notify (ckpt-inject(1)). */
#define MB_HOOKS_MAX 16
#define MB_API_CONNS 16
struct mb_api {
	int lfd;                  /* listening; -1: none */
	char path[108], dir[108]; /* $CKPT_API, and the directory only we may enter */
	int conn[MB_API_CONNS];   /* answered, until the program closes them */
	int nconn;
	int delay;       /* ckpt_delay() depth */
	int timeout;     /* the coordinator's --timeout (its STATUS says) */
	char cdir[PATH_MAX]; /* the coordinator's directory (its STATUS says) */
	int member, restarts, gen;
	unsigned long ask; /* the last checkpoint the program asked for */
	int asking;        /* its CHECKPOINT WAIT not answered yet */
	char result[600];  /* its answer: "OK gen" or "ERR why" */
	int freeze_gen;    /* a FREEZE waiting for ckpt_allow(); 0: none */
	double freeze_at;
	int frozen_once;   /* seized for a checkpoint: its RESUME is a resume */
	char *hook[MB_HOOKS_MAX];
	int nhook;
	int notify; /* signal sent on resume and restart; 0: none */
	char img[PATH_MAX]; /* a restart's image (mb_read_member) */
};

struct mb_helper {
	struct mb_api api;
	int sock; /* connected to the coordinator, authenticated */
	struct co_reader r;
	pid_t pid; /* the program (RESTART: the process that execs ckpt-remap) */
	struct dump_tree tr; /* the program and its descendants, while frozen */
	int seized;
	/* The image written and not yet synced (SYNC), of checkpoint gen;
	 * to be compressed into img_path first if raw is set, by the
	 * compressor comp (enum zio_kind). */
	int img_fd, img_gen, raw, comp;
	int dir_fd; /* the generation directory they are in */
	char img_path[PATH_MAX * 2], img_name[NAME_MAX + 1], raw_name[NAME_MAX + 1];
	struct mb_peers *peers; /* connections to other members (peers.c) */
};

/* What the helper tells ckpt-inject once the coordinator has answered its
 * JOIN, in one write (atomic on a pipe): ckpt-inject runs the program
 * only once it is a member, or says why it is not. */
struct mb_joined {
	pid_t helper;
	char api[108]; /* $CKPT_API for the program; "": none */
	int id; /* the member's id; 0: not a member, why says why */
	char why[512];
	int npeers; /* a restart: connections to other members that follow (SCM_RIGHTS) */
};

/* Join as name (NULL: the program's comm), asking for member id (0: any),
 * report the answer on the fd report (struct mb_joined; then closed), and
 * serve the coordinator until the program exits or the coordinator goes;
 * the program is let go on every way out.  Returns the helper's exit
 * status. */
int mb_serve(struct mb_helper *h, enum mb_mode mode, const char *name, int id, int report);
/* Start h's helper, a grandchild (nobody's child here, so the program
 * never sees it as one) that joins and then serves as mb_serve does, and
 * wait for what it reports in *j (why NUL-terminated); h->sock is then
 * the helper's alone, closed here.  -1 with err_set. */
int mb_start(struct mb_helper *h, enum mb_mode mode, const char *name, int id,
	     struct mb_joined *j) __attribute__((warn_unused_result));
/* Before restarting from img: every file its ".files" list names must
 * have only grown since the checkpoint; each is cut back to its size and
 * mtime then (one line on stderr each).  -1 with err_set naming the file
 * and what changed. */
int mb_check_files(const char *img) __attribute__((warn_unused_result));

/* Connections between members (peers.c; ckpt-coord(1), CONNECTIONS).
 * Frozen: tell the coordinator the ends of the tree whose other end is
 * outside it (END); -1 with err_set. */
int mb_peers_report(struct mb_helper *h, int gen) __attribute__((warn_unused_result));
/* LINK gen token side peer-id peer-name local remote: that end is paired. */
void mb_peers_link(struct mb_helper *h, const struct co_msg *m);
/* Before the dump: drain every paired end, swap what was drained with the
 * other end's helper and write back what the peer had not read; the dump
 * then records each as a peer.  -1 with err_set. */
int mb_peers_drain(struct mb_helper *h) __attribute__((warn_unused_result));
/* The ends mb_peers_drain drained, for the dump (dump_opts.peers). */
const struct fd_peer_mark *mb_peers_marks(struct mb_helper *h, size_t *n);
/* Beside the image img_name in dfd: the list a restart makes the
 * connections from (none: no list). */
int mb_peers_write(struct mb_helper *h, int dfd, const char *img_name)
	__attribute__((warn_unused_result));
/* After the dump: forget the ends. */
void mb_peers_clear(struct mb_helper *h);
/* The tree let go (killed: 1): the TCP connections to other members the
 * last drain found are reset (SO_LINGER 0) before the kill, as their other
 * ends are killed too: an orderly close would hold their addresses in
 * TIME_WAIT for a minute, where a restart without privilege makes them
 * again.  Then they are forgotten. */
void mb_peers_let_go(struct mb_helper *h, int killed);
/* A restart from img: every connection of its list made again through the
 * coordinator, the kept bytes delivered; ours[i] is the connection for
 * the image's end of connection tokens[i] (32 digits and a NUL; whichever
 * process of the tree holds it: malloc'd, *n of them).  -1 with err_set. */
int mb_peers_restart(struct mb_helper *h, const char *img, int **ours, char (**tokens)[33],
		     size_t *n) __attribute__((warn_unused_result));
/* The coordinator's lines a restart read meanwhile, for the helper to
 * serve: the i-th, NULL past the last. */
char *mb_peers_saved(struct mb_helper *h, size_t i);

/* The API's socket, made new (path NULL) or again where a restarted
 * program's $CKPT_API names it, in a directory of this user's alone;
 * -1 with err_set (the program then runs without it). */
int mb_api_open(struct mb_api *a, const char *path) __attribute__((warn_unused_result));
void mb_api_close(struct mb_api *a);
/* Answer what the program asks on the socket: every connection waiting. */
void mb_api_serve(struct mb_helper *h);
/* Close what the program has closed; 1 if it still holds a connection
 * (or one waits to be taken): not a state to freeze it in. */
int mb_api_busy(struct mb_helper *h);
/* A line from the coordinator that is an answer, not a request: the
 * STATUS asked before JOIN, or the CHECKPOINT WAIT the program asked for. */
void mb_api_answer(struct mb_helper *h, const char *line);
/* Run the hooks for event, for generation gen; 0, or -1 with err_set
 * naming the hook that failed and how. */
int mb_run_hooks(struct mb_helper *h, const char *event, int gen);
/* What a member's image keeps beside it (ckpt_NAME_ID.member) for its
 * restart: restarts, generation, the API's path, hooks and --notify.
 * mb_write_member writes it into dfd; mb_read_member fills a from the
 * one beside img (hooks and notify only where a has none): 0, or -1
 * (none there, or not ours). */
int mb_write_member(const struct mb_api *a, int gen, int dfd, const char *img_name);
int mb_read_member(struct mb_api *a, const char *img);

#endif
