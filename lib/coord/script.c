/* script.c: ckpt_restart_script.sh, the script a generation
 * restarts its computation with (ckpt-coord(1), FILES). */
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "coord/coord.h"
#include "base/base.h"
#include "io/io.h"

/* A shell word: single-quoted. */
static void sh_quote(FILE *f, const char *s)
{
	fputc('\'', f);
	for (; *s; s++)
		if (*s == '\'')
			fputs("'\\''", f);
		else
			fputc(*s, f);
	fputc('\'', f);
}

/* The script's parts, in order: each writes its lines to f. */

/* Its first lines, and how it is called. */
static void script_head(FILE *f, int gen)
{
	fprintf(f, "#!/usr/bin/env bash\n"
		   "# ckpt_restart_script.sh: written by ckpt-coord for generation %d.\n"
		   "# Restarts every member of the computation from this generation's images,\n"
		   "# each on its own host (ssh for the others), under a new coordinator.\n"
		   "set -u\n\n",
		gen);
	fputs("usage() {\n"
	      "\techo 'usage: ckpt_restart_script.sh [--coord-host host] [--coord-port port] "
	      "[--port-file file] [--secret-file file] [--host-map old=new]... [--hostfile file] "
	      "[--setenv name=value]... [--unsetenv name]... [--path-map old=new]...' >&2\n"
	      "\texit 2\n}\n\n",
	      f);
}

/* The directory of the tools (ckpt-inject's, as this coordinator finds
 * it; "" for PATH), into bin. */
static void tool_dir(char *bin, size_t size)
{
	char tool[PATH_MAX];
	char *slash;

	snprintf(bin, size, "%s", co_tool("ckpt-inject", tool, sizeof(tool)));
	slash = strrchr(bin, '/');
	if (slash)
		*slash = 0;
	else
		bin[0] = 0;
}

/* Where the tools and the checkpoints are, and the settings the new
 * coordinator gets: this one's. */
static void script_settings(FILE *f, const struct co_script *s)
{
	char bin[PATH_MAX];

	tool_dir(bin, sizeof(bin));
	fputs("bin=", f);
	sh_quote(f, bin);
	fputs("\ndir=", f);
	sh_quote(f, s->dir);
	/* The old coordinator's address and secret are the new one's unless
	 * told otherwise. */
	fputs("\ncoord_host=${CKPT_COORD_HOST:-", f);
	sh_quote(f, s->bind ? s->bind : CO_DEFAULT_HOST);
	fputs("}\nsecret_file=${CKPT_COORD_SECRET_FILE:-", f);
	sh_quote(f, s->secret_file ? s->secret_file : "");
	fprintf(f, "}\ncoord_port=${CKPT_COORD_PORT:-%d}\n"
		   "port_file=\n"
		   "interval=%d\nkeep=%d\ncompress=%s\nsave_max=%lld\n",
		s->port, s->interval, s->keep, zio_name(s->compress), s->save_max);
	fputs("here=$(cd \"$(dirname \"$(readlink -f \"${BASH_SOURCE[0]}\")\")\" && pwd)\n"
	      "declare -A hostmap=()\n"
	      "hosts=()  # --hostfile's hosts, for the members --host-map does not move\n"
	      "remap=()  # ckpt-remap's options, for each member's\n"
	      "read -ra ssh <<<\"${CKPT_SSH:-ssh}\"\n\n",
	      f);
}

/* The script's options, and how it finds a tool. */
static void script_options(FILE *f)
{
	fputs("# --hostfile FILE: a line \"old new\" maps host old to new, as --host-map;\n"
	      "# a line of one host adds it to the hosts the other members are given\n"
	      "# in turn (round-robin, in the order of the members); # comments.\n"
	      "hostfile() {\n"
	      "\tlocal line w\n"
	      "\t[ -r \"$1\" ] || { echo \"ckpt_restart_script.sh: --hostfile $1: cannot read it\" >&2; "
	      "exit 2; }\n"
	      "\twhile IFS= read -r line || [ -n \"$line\" ]; do\n"
	      "\t\tline=${line%%#*}\n"
	      "\t\tread -ra w <<<\"$line\"\n"
	      "\t\tcase ${#w[@]} in\n"
	      "\t\t0) ;;\n"
	      "\t\t1) hosts+=(\"${w[0]}\") ;;\n"
	      "\t\t2) hostmap[${w[0]}]=${w[1]} ;;\n"
	      "\t\t*) echo \"ckpt_restart_script.sh: --hostfile $1: not a host or 'old new': $line\" "
	      ">&2; exit 2 ;;\n"
	      "\t\tesac\n"
	      "\tdone <\"$1\"\n"
	      "}\n\n"
	      "while [ $# -gt 0 ]; do\n"
	      "\tcase $1 in\n"
	      "\t--coord-host) [ $# -ge 2 ] || usage; coord_host=$2; shift 2 ;;\n"
	      "\t--coord-port) [ $# -ge 2 ] || usage; coord_port=$2; shift 2 ;;\n"
	      "\t--port-file) [ $# -ge 2 ] || usage; port_file=$2; shift 2 ;;\n"
	      "\t--secret-file) [ $# -ge 2 ] || usage; secret_file=$2; shift 2 ;;\n"
	      "\t--host-map | --host) [[ $# -ge 2 && $2 == ?*=?* ]] || usage\n"
	      "\t\thostmap[${2%%=*}]=${2#*=}\n"
	      "\t\tshift 2 ;;\n"
	      "\t--hostfile) [ $# -ge 2 ] || usage; hostfile \"$2\"; shift 2 ;;\n"
	      "\t--setenv | --unsetenv | --path-map) [ $# -ge 2 ] || usage; remap+=(\"$1\" \"$2\"); "
	      "shift 2 ;;\n"
	      "\t-h | --help) usage ;;\n"
	      "\t*) usage ;;\n"
	      "\tesac\n"
	      "done\n\n"
	      "tool() {\n"
	      "\tif [ -x \"$bin/$1\" ]; then echo \"$bin/$1\"; else echo \"$1\"; fi\n"
	      "}\n\n",
	      f);
}

/* The members of the generation, four words each. */
static void script_members(FILE *f, const struct co_script *s)
{
	fputs("# The members: host, image (each in this directory on its host), the\n"
	      "# member's name and id (kept across restarts: its images' names).\n"
	      "members=(\n",
	      f);
	for (int i = 0; i < s->n; i++) {
		fputc('\t', f);
		sh_quote(f, s->m[i].host);
		fputc(' ', f);
		sh_quote(f, s->m[i].file);
		fputc(' ', f);
		sh_quote(f, s->m[i].program);
		fprintf(f, " %d\n", s->m[i].id);
	}
	fputs(")\n\n", f);
}

/* A coordinator for the members to join: one that answers already, or a
 * new one (ckpt-coord --exit-on-last), whose port goes to --port-file. */
static void script_coordinator(FILE *f)
{
	fputs("# The secret, for the coordinator and every member, if there is one.\n"
	      "secret=()\n"
	      "[ -z \"$secret_file\" ] || secret=(--secret-file \"$secret_file\")\n"
	      "# A new coordinator, unless one answers there already.\n"
	      "coord_pid=\n"
	      "if ! \"$(tool ckpt-signal)\" --coord-host \"$coord_host\" --coord-port \"$coord_port\" "
	      "\"${secret[@]}\" --status >/dev/null 2>&1; then\n"
	      "\tpf=$(mktemp \"${TMPDIR:-/tmp}/ckpt-port.XXXXXX\") || exit 99\n"
	      "\topts=(--exit-on-last --port \"$coord_port\" --port-file \"$pf\" --dir \"$dir\" "
	      "--keep \"$keep\" --interval \"$interval\" --save-files-max \"$save_max\"\n"
	      "\t\t--compress \"$compress\" --log \"$dir/ckpt_coord.log\" \"${secret[@]}\")\n"
	      "\t[ \"$coord_host\" = 127.0.0.1 ] || [ \"$coord_host\" = localhost ] || "
	      "opts+=(--bind \"$coord_host\")\n"
	      "\t\"$(tool ckpt-coord)\" \"${opts[@]}\" </dev/null &\n"
	      "\tcoord_pid=$!\n"
	      "\tfor ((i = 0; i < 2000; i++)); do\n"
	      "\t\t[ -s \"$pf\" ] && break\n"
	      "\t\tkill -0 \"$coord_pid\" 2>/dev/null || break\n"
	      "\t\tsleep 0.01\n"
	      "\tdone\n"
	      "\tcoord_port=$(cat \"$pf\")\n"
	      "\trm -f \"$pf\"\n"
	      "\tif [ -z \"$coord_port\" ]; then\n"
	      "\t\techo \"ckpt_restart_script.sh: the coordinator did not start\" >&2\n"
	      "\t\texit 99\n"
	      "\tfi\n"
	      "fi\n"
	      "if [ -n \"$port_file\" ]; then\n"
	      "\techo \"$coord_port\" >\"$port_file.tmp\" && mv \"$port_file.tmp\" \"$port_file\"\n"
	      "fi\n\n",
	      f);
}

/* Each member restarted by ckpt-inject --restart on its host (mapped by
 * --host-map or --hostfile), all at once; on another host through
 * $CKPT_SSH, in a command line for the remote user's shell, whatever it
 * is (words single-quoted). */
static void script_restart(FILE *f)
{
	fputs("# ckpt-inject --restart runs ckpt-remap, which takes these first.\n"
	      "if [ ${#remap[@]} -gt 0 ]; then\n"
	      "\tCKPT_REMAP_ARGS=$(printf '%s\\n' \"${remap[@]}\")\n"
	      "\texport CKPT_REMAP_ARGS\n"
	      "fi\n"
	      "# A word for any sh: single-quoted.\n"
	      "shq() {\n"
	      "\tprintf \"'%s' \" \"${1//\\'/\\'\\\\\\'\\'}\"\n"
	      "}\n"
	      "me=$(hostname)\n"
	      "pids=()\n"
	      "turn=0\n"
	      "for ((i = 0; i < ${#members[@]}; i += 4)); do\n"
	      "\thost=${members[i]}\n"
	      "\timg=$here/${members[i + 1]}\n"
	      "\tif [ -n \"${hostmap[$host]:-}\" ]; then\n"
	      "\t\thost=${hostmap[$host]}\n"
	      "\telif [ ${#hosts[@]} -gt 0 ]; then\n"
	      "\t\thost=${hosts[turn++ % ${#hosts[@]}]}\n"
	      "\tfi\n"
	      "\targs=(--coord-host \"$coord_host\" --coord-port \"$coord_port\" \"${secret[@]}\" "
	      "--name \"${members[i + 2]}\" --id \"${members[i + 3]}\" --restart \"$img\")\n"
	      "\tif [ \"$host\" = \"$me\" ] || [ \"$host\" = localhost ]; then\n"
	      "\t\t# Our stdin, not the /dev/null a job of a shell without job\n"
	      "\t\t# control gets: a program on a terminal reads it again.\n"
	      "\t\t\"$(tool ckpt-inject)\" \"${args[@]}\" <&0 &\n"
	      "\telse\n"
	      "\t\t# The tools where they are here, if they are there too; else its PATH.\n"
	      "\t\tcmd=\"t=$(shq \"$bin/ckpt-inject\"); [ -x \\\"\\$t\\\" ] || t=ckpt-inject; \"\n"
	      "\t\tcmd+=\"CKPT_REMAP_ARGS=$(shq \"${CKPT_REMAP_ARGS:-}\") exec \\\"\\$t\\\" \"\n"
	      "\t\tfor a in \"${args[@]}\"; do cmd+=$(shq \"$a\"); done\n"
	      "\t\t\"${ssh[@]}\" -n -- \"$host\" \"$cmd\" &\n"
	      "\tfi\n"
	      "\tpids+=($!)\n"
	      "done\n\n",
	      f);
}

/* The members' end, and the coordinator's if the script started it. */
static void script_wait(FILE *f)
{
	fputs("# The first failure is the script's status; every member is waited for.\n"
	      "rc=0\n"
	      "for p in \"${pids[@]}\"; do\n"
	      "\tst=0\n"
	      "\twait \"$p\" || st=$?\n"
	      "\t[ \"$rc\" -ne 0 ] || rc=$st\n"
	      "done\n"
	      "if [ -n \"$coord_pid\" ]; then\n"
	      "\t# It exits with the last member; not if none ever joined.\n"
	      "\tfor ((i = 0; i < 200; i++)); do\n"
	      "\t\tkill -0 \"$coord_pid\" 2>/dev/null || break\n"
	      "\t\tsleep 0.01\n"
	      "\tdone\n"
	      "\tkill \"$coord_pid\" 2>/dev/null\n"
	      "\twait \"$coord_pid\" 2>/dev/null\n"
	      "fi\n"
	      "exit \"$rc\"\n",
	      f);
}

int co_write_script(const char *dir, const struct co_script *s)
{
	char path[PATH_MAX + 64];
	FILE *f;
	int fd;

	snprintf(path, sizeof(path), "%s/ckpt_restart_script.sh", dir);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0755);
	if (fd < 0 || !(f = fdopen(fd, "w"))) {
		if (fd >= 0)
			close(fd);
		err_sys("cannot write %s", path);
		return -1;
	}
	script_head(f, s->gen);
	script_settings(f, s);
	script_options(f);
	script_members(f, s);
	script_coordinator(f);
	script_restart(f);
	script_wait(f);
	if (fflush(f) || fsync(fileno(f)) || fclose(f)) {
		err_sys("cannot write %s", path);
		return -1;
	}
	return 0;
}
