/* Fuzz target: the coordinator protocol's line reader and parser, on any
 * bytes, as a client could send them.  The bytes go through a memory file
 * into the same co_reader ckpt-coord reads sockets with (reads as large as
 * its buffer allows, so that long lines overflow it), and
 * every line it hands out through co_parse; what parses is escaped again
 * and must parse back to the same verb and arguments.  Built with
 * libFuzzer by `make fuzz`; `make check` replays the corpus through it
 * (t/fuzz/replay.c). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "coord/coord.h"
#include "base/base.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A parsed message written out again parses to itself. */
static void round_trip(const struct co_msg *m)
{
	static struct co_msg again;
	static char line[CO_LINE_MAX * 4], esc[CO_LINE_MAX * 3 + 1];
	size_t n = snprintf(line, sizeof(line), "%s", co_verb_name(m->verb));

	for (int i = 0; i < m->argc; i++) {
		if (co_escape(m->argv[i], esc, sizeof(esc)))
			abort();
		n += snprintf(line + n, sizeof(line) - n, " %s", esc);
	}
	/* Escaping only grows a line: one over the limit is refused. */
	if (n > CO_LINE_MAX)
		return;
	if (co_parse(line, n, &again) || again.verb != m->verb || again.argc != m->argc)
		abort();
	for (int i = 0; i < m->argc; i++)
		if (strcmp(again.argv[i], m->argv[i]) && strcmp(m->argv[i], ""))
			abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct co_reader r;
	static struct co_msg m;
	int fd = memfd_create("lines", MFD_CLOEXEC);
	char *line;

	if (fd < 0)
		abort();
	if (write_all(fd, data, size) || lseek(fd, 0, SEEK_SET) != 0)
		abort();
	memset(&r, 0, sizeof(r));
	r.fd = fd;
	for (;;) {
		int k = co_next_line(&r, &line);
		if (k == 1) {
			if (co_parse(line, r.line_len, &m) == 0)
				round_trip(&m);
			continue;
		}
		if (k == -2)
			continue;
		if (co_fill(&r) <= 0)
			break;
	}
	/* What is left without a newline is a line too, as at a close. */
	if (r.len - r.used > 0 && r.len - r.used <= CO_LINE_MAX && !r.skip &&
	    co_parse(r.buf + r.used, r.len - r.used, &m) == 0)
		round_trip(&m);
	close(fd);
	return 0;
}
