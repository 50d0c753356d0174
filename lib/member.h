/* member.h: a member of a coordinated computation, as its helper sees it
 * (ckpt-inject's detached helper process; see ckpt-coord(1)). */
#ifndef CKPT_MEMBER_H
#define CKPT_MEMBER_H

#include <limits.h>
#include <sys/types.h>

#include "coord.h"
#include "dump.h"

/* How the helper finds its program: the process that started it, once it
 * has exec'd the command (RUN); a running process (ATTACH); the program
 * ckpt-remap restores in the process that started it (RESTART: that
 * process itself, or its one child when the old pid was kept). */
enum mb_mode { MB_RUN, MB_ATTACH, MB_RESTART };

struct mb_helper {
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
};

/* What the helper tells ckpt-inject once the coordinator has answered its
 * JOIN, in one write (atomic on a pipe): ckpt-inject runs the program
 * only once it is a member, or says why it is not. */
struct mb_joined {
	pid_t helper;
	int id; /* the member's id; 0: not a member, why says why */
	char why[512];
};

/* Join as name (NULL: the program's comm), asking for member id (0: any),
 * report the answer on the fd report (struct mb_joined; then closed), and
 * serve the coordinator until the program exits or the coordinator goes;
 * the program is let go on every way out.  Returns the helper's exit
 * status. */
int mb_serve(struct mb_helper *h, enum mb_mode mode, const char *name, int id, int report);
/* Before restarting from img: every file its ".files" list names must
 * have only grown since the checkpoint; each is cut back to its size and
 * mtime then (one line on stderr each).  -1 with err_set naming the file
 * and what changed. */
int mb_check_files(const char *img) __attribute__((warn_unused_result));

#endif
