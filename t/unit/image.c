/* Unit tests of the image writer and reader: a round trip, and every
 * single-byte corruption and every truncation of a small image is caught. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/crc32c.h"
#include "base/base.h"
#include "image/image.h"
#include "incr/incr.h"
#include "inspect/inspect.h"

#include "unit.h"

static char tmpl[] = "/tmp/ckpt-unit-XXXXXX";

/* A small synthetic image: one region with two runs of data, one file, a
 * memfd mapped and open with one page of data. */
static size_t write_image(const char *path, int incr)
{
	struct img_writer w = {0};
	struct image im;
	struct region rg[3];
	struct fd_entry fe[2];
	struct shm_obj so;
	struct ipc_obj io;
	unsigned char ipcdata[56];
	struct img_run srun = {4096, 1};
	struct thread th;
	unsigned char xs[1024], data[3 * 4096];
	struct img_run runs[2] = {{0x10000, 2}, {0x14000, 1}};
	uint64_t auxv[4] = {6, 4096, 0, 0};

	memset(&im, 0, sizeof(im));
	memset(rg, 0, sizeof(rg));
	memset(fe, 0, sizeof(fe));
	memset(&so, 0, sizeof(so));
	memset(&th, 0, sizeof(th));
	memset(xs, 0x5a, sizeof(xs));
	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (unsigned char)(i * 7 + 1);
	img_header_init(&im.hdr);
	im.proc.pid = 42;
	im.proc.nthreads = 1;
	im.proc.nregions = 3;
	im.proc.nfiles = 2;
	im.exe = "/bin/true";
	im.cwd = "/";
	im.cmdline = "true\0arg";
	im.auxv = auxv;
	im.proc.exe_len = 9;
	im.proc.cwd_len = 1;
	im.proc.cmdline_len = 9;
	im.proc.auxv_len = sizeof(auxv);
	th.d.tid = 42;
	th.d.xstate_len = sizeof(xs);
	th.xstate = xs;
	im.threads = &th;
	im.nthreads = 1;
	im.sigacts[1].handler = 1;
	rg[0].d = (struct img_region){.start = 0x10000, .end = 0x20000, .prot = 3};
	rg[1].d = (struct img_region){.start = 0x30000, .end = 0x31000, .prot = 1, .kind = 1,
				      .path_len = 9};
	rg[1].path = "/bin/true";
	rg[2].d = (struct img_region){.start = 0x40000, .end = 0x42000, .prot = 3, .kind = IMG_RGN_SHM,
				      .flags = IMG_RGN_SHARED, .dev = 7, .ino = 9, .path_len = 9};
	rg[2].path = "/memfd:m ";
	im.regions = rg;
	im.nregions = 3;
	fe[0].d = (struct img_file){.fd = 3, .kind = IMG_FD_CHR, .path_len = 9};
	fe[0].path = "/dev/null";
	fe[1].d = (struct img_file){.fd = 4, .kind = IMG_FD_SHM, .dev = 7, .ino = 9, .path_len = 8};
	fe[1].path = "/memfd:m";
	im.files = fe;
	im.nfiles = 2;
	so.d = (struct img_shm){.dev = 7, .ino = 9, .size = 8192, .kind = IMG_SHM_MEMFD, .mode = 0600,
				.name_len = 1};
	so.name = "m";
	im.shms = &so;
	im.nshms = 1;
	/* A queue of two messages: "hi" (type 1) and 9 bytes (type 7). */
	memset(ipcdata, 0, sizeof(ipcdata));
	memcpy(ipcdata, &(int64_t){1}, 8);
	memcpy(ipcdata + 8, &(uint64_t){2}, 8);
	memcpy(ipcdata + 16, "hi", 2);
	memcpy(ipcdata + 24, &(int64_t){7}, 8);
	memcpy(ipcdata + 32, &(uint64_t){9}, 8);
	memcpy(ipcdata + 40, "123456789", 9);
	io.d = (struct img_ipc){.kind = IMG_IPC_MSG, .id = 5, .mode = 0600, .n = 2,
				.data_len = sizeof(ipcdata)};
	io.data = ipcdata;
	im.ipcs = &io;
	im.nipcs = 1;
	/* Incremental: a parent, hashes of the three pages and of 0x15000,
	 * which it takes from the parent. */
	struct parent parent = {.d = {.depth = 1, .path_len = 10}, .path = "parent.img"};
	struct img_pagelist hl = {.pid = 42, .nruns = 2, .npages = 4};
	struct img_pagelist rl = {.pid = 42, .nruns = 1, .npages = 1};
	struct img_run hruns[2] = {{0x10000, 2}, {0x14000, 2}}, rrun = {0x15000, 1};
	uint64_t hashes[4][2] = {{1, 2}, {3, 4}, {5, 6}, {7, 8}};
	struct iovec hv[3] = {{&hl, sizeof(hl)}, {hruns, sizeof(hruns)}, {hashes, sizeof(hashes)}};
	struct iovec rv[2] = {{&rl, sizeof(rl)}, {&rrun, sizeof(rrun)}};

	if (incr)
		im.parent = &parent;
	w.fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (w.fd < 0 || img_write_header(&w, &im.hdr) || img_write_meta(&w, &im) ||
	    img_write_shmdata(&w, 0, &srun, 1, data, 1) || img_write_pages(&w, runs, 2, data, 3) ||
	    (incr && (img_write_rec(&w, IMG_REC_HASHES, hv, 3) ||
		      img_write_rec(&w, IMG_REC_REUSE, rv, 2))) ||
	    img_write_end(&w)) {
		fprintf(stderr, "cannot write test image: %s\n", err_get());
		exit(1);
	}
	close(w.fd);
	return w.off;
}

/* A tree of three: the root (pid 42, ppid 1) maps and holds a memfd; its
 * child 43 maps the same memfd and has a pipe whose other end the root
 * holds (one open file description, desc 1); 44 is a zombie that exited 7. */
static size_t write_tree(const char *path)
{
	struct img_writer w = {0};
	struct image im[3];
	struct region rg[3];
	struct fd_entry fe[3];
	struct shm_obj so;
	struct thread th[2];
	struct img_pipe pp = {.id = 77, .size = 65536, .end = 1};
	unsigned char xs[1024], data[3 * 4096], pipeextra[sizeof(pp)];
	struct img_run srun = {0, 1}, run0 = {0x10000, 2}, run1 = {0x50000, 1};
	uint64_t auxv[4] = {6, 4096, 0, 0};
	struct img_procpages p42 = {.pid = 42}, p43 = {.pid = 43};
	struct iovec v42 = {&p42, sizeof(p42)}, v43 = {&p43, sizeof(p43)};

	memset(im, 0, sizeof(im));
	memset(rg, 0, sizeof(rg));
	memset(fe, 0, sizeof(fe));
	memset(&so, 0, sizeof(so));
	memset(th, 0, sizeof(th));
	memset(xs, 0x5a, sizeof(xs));
	memcpy(pipeextra, &pp, sizeof(pp));
	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (unsigned char)(i * 5 + 3);
	so.d = (struct img_shm){.dev = 7, .ino = 9, .size = 4096, .kind = IMG_SHM_MEMFD, .mode = 0600,
				.name_len = 1};
	so.name = "m";
	for (int k = 0; k < 3; k++) {
		img_header_init(&im[k].hdr);
		im[k].proc.pid = 42 + k;
		im[k].proc.ppid = k ? 42 : 1;
		im[k].proc.pgid = im[k].proc.sid = 42;
		im[k].proc.exit_signal = 17;
		im[k].exe = k == 2 ? "" : "/bin/true";
		im[k].cwd = k == 2 ? "" : "/";
		im[k].cmdline = k == 2 ? "" : "true";
		im[k].proc.exe_len = k == 2 ? 0 : 9;
		im[k].proc.cwd_len = k == 2 ? 0 : 1;
		im[k].proc.cmdline_len = k == 2 ? 0 : 5;
		if (k < 2) {
			im[k].auxv = auxv;
			im[k].proc.auxv_len = sizeof(auxv);
			th[k].d.tid = 42 + k;
			th[k].d.xstate_len = sizeof(xs);
			th[k].xstate = xs;
			im[k].threads = &th[k];
			im[k].nthreads = im[k].proc.nthreads = 1;
			im[k].shms = &so;
			im[k].nshms = 1;
		}
	}
	im[2].proc.flags = IMG_PROC_ZOMBIE;
	im[2].proc.exit_status = 7 << 8;
	rg[0].d = (struct img_region){.start = 0x10000, .end = 0x20000, .prot = 3};
	rg[1].d = (struct img_region){.start = 0x40000, .end = 0x41000, .prot = 3, .kind = IMG_RGN_SHM,
				      .flags = IMG_RGN_SHARED, .dev = 7, .ino = 9, .path_len = 9};
	rg[1].path = "/memfd:m ";
	rg[2] = rg[1];
	im[0].regions = rg;
	im[0].nregions = im[0].proc.nregions = 2;
	rg[2].d.start = 0x50000 - 0x1000;
	rg[2].d.end = 0x50000;
	im[1].regions = &rg[2];
	im[1].nregions = im[1].proc.nregions = 1;
	/* 43's only region is the memfd's; its page data needs an anonymous
	 * one: give it a second region. */
	fe[0].d = (struct img_file){.fd = 4, .kind = IMG_FD_SHM, .dev = 7, .ino = 9, .path_len = 8};
	fe[0].path = "/memfd:m";
	fe[1].d = (struct img_file){.fd = 5, .kind = IMG_FD_PIPE, .path_len = 9, .flags = 1,
				    .extra_len = sizeof(pp), .desc = 1};
	fe[1].path = "pipe:[77]";
	fe[1].extra = pipeextra;
	fe[2] = fe[1];
	im[0].files = fe;
	im[0].nfiles = im[0].proc.nfiles = 2;
	im[1].files = &fe[2];
	im[1].nfiles = im[1].proc.nfiles = 1;
	im[0].hdr.nprocs = 3;
	w.fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (w.fd < 0 || img_write_header(&w, &im[0].hdr))
		goto fail;
	{
		struct region both[2] = {rg[2], {.d = {.start = 0x50000, .end = 0x51000, .prot = 3}}};
		im[1].regions = both;
		im[1].nregions = im[1].proc.nregions = 2;
		if (img_write_meta(&w, &im[0]) || img_write_meta(&w, &im[1]) ||
		    img_write_meta(&w, &im[2]))
			goto fail;
	}
	if (img_write_shmdata(&w, 0, &srun, 1, data, 1) ||
	    img_write_rec(&w, IMG_REC_PROCPAGES, &v42, 1) || img_write_pages(&w, &run0, 1, data, 2) ||
	    img_write_rec(&w, IMG_REC_PROCPAGES, &v43, 1) || img_write_pages(&w, &run1, 1, data, 1) ||
	    img_write_end(&w))
		goto fail;
	close(w.fd);
	return w.off;
fail:
	fprintf(stderr, "cannot write test tree image: %s\n", err_get());
	exit(1);
}

static int read_image(const char *path, struct img_totals *t, struct img_input *in)
{
	int rc = img_open(path, in);

	if (rc == 0)
		rc = img_scan_data(in, t);
	if (in->r.fd > 0)
		close(in->r.fd);
	return rc;
}

/* unit-image [SEED [tree | incr]]: with SEED, only write the synthetic
 * image there (a seed for the fuzzer's corpus: every record type is in
 * it; tree: a tree image; incr: an incremental one). */
int main(int argc, char **argv)
{
	char path[64], bad[80];
	struct img_totals t = {0};
	struct img_input in;
	unsigned char *orig;
	size_t len;
	int fd;

	prog = "unit-image";
	if (argc == 3 && !strcmp(argv[2], "tree")) {
		write_tree(argv[1]);
		return 0;
	}
	if (argc == 3 && !strcmp(argv[2], "incr")) {
		write_image(argv[1], 1);
		return 0;
	}
	if (argc == 2) {
		write_image(argv[1], 0);
		return 0;
	}
	/* The CRC-32C check value (RFC 3720). */
	CHECK(crc32c_sw(0, "123456789", 9) == 0xe3069283u, "software crc32c");
	CHECK(crc32c_hw(0, "123456789", 9) == 0xe3069283u, "hardware crc32c");
	/* Three lanes agree with one, at every length and alignment around
	 * the lane blocks. */
	{
		static unsigned char big[4 * 3 * CRC32C_LANE + 64];
		struct crc32c_lanes l;
		int bad = 0;

		crc32c_lanes_init(&l);
		for (size_t i = 0; i < sizeof(big); i++)
			big[i] = (unsigned char)(i * 131 + (i >> 9));
		for (size_t off = 0; off < 9; off++)
			for (size_t len = 3 * CRC32C_LANE - 9; len < sizeof(big) - off;
			     len += 3 * CRC32C_LANE - 5)
				bad += crc32c_hw3(&l, 0x1234, big + off, len) !=
				       crc32c_hw(0x1234, big + off, len);
		CHECK(!bad && crc32c_hw3(&l, 0, big, sizeof(big)) == crc32c_sw(0, big, sizeof(big)),
		      "three-lane crc32c: %d mismatches", bad);
	}
	CHECK(img_crc(img_crc(0, "1234", 4), "56789", 5) == 0xe3069283u, "crc32c chaining");
	{
		static unsigned char big[3 * 8192 + 77];
		static const size_t cuts[] = {0, 1, 5, 4096, 8192, 8193, 3 * 8192 + 76};
		int bad = 0;

		for (size_t i = 0; i < sizeof(big); i++)
			big[i] = (unsigned char)(i * 2654435761u >> 13);
		for (size_t c = 0; c < sizeof(cuts) / sizeof(cuts[0]); c++) {
			size_t a = cuts[c], b = sizeof(big) - a;
			bad += img_crc_combine(img_crc(0, big, a), img_crc(0, big + a, b), b) !=
			       img_crc(0, big, sizeof(big));
		}
		CHECK(!bad && img_crc_combine(img_crc(0, "1234", 4), img_crc(0, "56789", 5), 5) ==
				      0xe3069283u,
		      "crc32c combine: %d mismatches", bad);
	}

	fd = mkstemp(tmpl);
	close(fd);
	snprintf(path, sizeof(path), "%s", tmpl);
	snprintf(bad, sizeof(bad), "%s.bad", tmpl);
	/* An incremental image reads on its own; through img_open its
	 * parent must be there. */
	write_image(path, 1);
	CHECK(img_open_one(path, &in) == 0 && img_scan_data(&in, &t) == 0 && in.im.parent &&
		      in.im.parent->hashed == 4 && in.im.parent->reused == 1 && t.pages == 4 &&
		      !strcmp(in.im.parent->path, "parent.img"),
	      "incremental image: %s", err_get());
	if (in.r.fd > 0)
		close(in.r.fd);
	img_input_free(&in);
	CHECK(img_open(path, &in) != 0 && strstr(err_get(), "parent image parent.img: missing ("),
	      "incremental image without its parent: %s", err_get());
	/* The page hash: the same page, the same hash; one bit flipped
	 * anywhere, another. */
	{
		static uint64_t page[INCR_PAGE / 8];
		struct incr_key k;
		uint64_t seed[2] = {1, 2}, h0[2], h1[2];
		int same = 0;

		incr_key_expand(&k, seed);
		incr_hash_page(&k, page, h0);
		for (int bit = 0; bit < INCR_PAGE * 8; bit += 7) {
			page[bit / 64] ^= 1ull << (bit % 64);
			incr_hash_page(&k, page, h1);
			same += h1[0] == h0[0] || h1[1] == h0[1];
			page[bit / 64] ^= 1ull << (bit % 64);
		}
		incr_hash_page(&k, page, h1);
		CHECK(!same && h1[0] == h0[0] && h1[1] == h0[1], "page hash: %d collisions", same);
	}
	len = write_image(path, 0);

	CHECK(read_image(path, &t, &in) == 0, "round trip: %s", err_get());
	CHECK(in.im.proc.pid == 42 && !strcmp(in.im.exe, "/bin/true") &&
		      in.im.proc.cmdline_len == 9 && !memcmp(in.im.cmdline, "true\0arg", 9),
	      "process fields survive");
	CHECK(in.im.nregions == 3 && in.im.regions[0].stored == 3 && in.im.regions[1].stored == 0,
	      "pages are counted per region (%llu)", (unsigned long long)in.im.regions[0].stored);
	CHECK(in.im.nfiles == 2 && in.im.files[0].d.fd == 3 &&
		      !strcmp(in.im.files[0].path, "/dev/null") && in.im.files[1].d.kind == IMG_FD_SHM,
	      "files survive");
	CHECK(in.im.nshms == 1 && in.im.shms[0].stored == 1 && !strcmp(in.im.shms[0].name, "m") &&
		      in.im.shms[0].d.size == 8192,
	      "the memory object survives, its page counted");
	CHECK(in.im.nipcs == 1 && in.im.ipcs[0].d.n == 2 && in.im.ipcs[0].d.data_len == 56 &&
		      !memcmp(in.im.ipcs[0].data + 40, "123456789", 9),
	      "the message queue survives");
	CHECK(in.im.sigacts[1].handler == 1, "signal actions survive");
	CHECK(t.pages == 4 && t.bytes == len, "totals: %llu pages, %llu of %zu bytes",
	      (unsigned long long)t.pages, (unsigned long long)t.bytes, len);
	img_input_free(&in);

	/* Every byte is covered: flipping any one of them is caught. */
	orig = malloc(len);
	fd = open(path, O_RDONLY);
	CHECK(read(fd, orig, len) == (ssize_t)len, "read back");
	close(fd);
	{
		size_t missed = 0, first = 0;
		for (size_t i = 0; i < len; i++) {
			orig[i] ^= 0x01;
			fd = open(bad, O_WRONLY | O_CREAT | O_TRUNC, 0600);
			if (write(fd, orig, len) != (ssize_t)len)
				exit(1);
			close(fd);
			orig[i] ^= 0x01;
			if (read_image(bad, &t, &in) == 0) {
				if (!missed++)
					first = i;
			}
			img_input_free(&in);
		}
		CHECK(missed == 0, "%zu of %zu flipped bytes went unnoticed (first at %zu)", missed,
		      len, first);
	}
	/* Every cut is caught. */
	{
		size_t missed = 0;
		for (size_t cut = 0; cut < len; cut += (cut < 8192 ? 1 : 97)) {
			fd = open(bad, O_WRONLY | O_CREAT | O_TRUNC, 0600);
			if (write(fd, orig, cut) != (ssize_t)cut)
				exit(1);
			close(fd);
			if (read_image(bad, &t, &in) == 0)
				missed++;
			img_input_free(&in);
		}
		CHECK(missed == 0, "%zu truncations went unnoticed", missed);
	}
	free(orig);

	/* A tree: three processes, one object they share, a zombie. */
	len = write_tree(path);
	CHECK(read_image(path, &t, &in) == 0, "tree round trip: %s", err_get());
	CHECK(in.nrest == 2 && in.rest[0].proc.pid == 43 && in.rest[1].proc.pid == 44 &&
		      (in.rest[1].proc.flags & IMG_PROC_ZOMBIE) &&
		      in.rest[1].proc.exit_status == 7 << 8 && in.rest[1].nthreads == 0,
	      "the tree's processes survive, the zombie with its status");
	CHECK(in.nobjs == 1 && in.objs[0]->stored == 1, "one object for the two processes");
	CHECK(in.im.files[1].d.desc == 1 && in.rest[0].files[0].d.desc == 1,
	      "the shared description survives");
	CHECK(in.im.regions[0].stored == 2 && in.rest[0].regions[1].stored == 1,
	      "each process's pages are counted in its own regions");
	CHECK(t.pages == 4 && t.bytes == len, "tree totals: %llu pages", (unsigned long long)t.pages);
	img_input_free(&in);
	orig = malloc(len);
	fd = open(path, O_RDONLY);
	CHECK(read(fd, orig, len) == (ssize_t)len, "read back");
	close(fd);
	{
		size_t missed = 0, cuts = 0;
		for (size_t i = 0; i < len; i += 11) {
			orig[i] ^= 0x10;
			fd = open(bad, O_WRONLY | O_CREAT | O_TRUNC, 0600);
			if (write(fd, orig, len) != (ssize_t)len)
				exit(1);
			close(fd);
			orig[i] ^= 0x10;
			missed += read_image(bad, &t, &in) == 0;
			img_input_free(&in);
		}
		for (size_t cut = 0; cut < len; cut += 61) {
			fd = open(bad, O_WRONLY | O_CREAT | O_TRUNC, 0600);
			if (write(fd, orig, cut) != (ssize_t)cut)
				exit(1);
			close(fd);
			cuts += read_image(bad, &t, &in) == 0;
			img_input_free(&in);
		}
		CHECK(missed == 0 && cuts == 0, "tree: %zu flips and %zu cuts went unnoticed", missed,
		      cuts);
	}
	/* A child before its parent is refused. */
	{
		const struct image *procs[2];
		struct image a, b;
		memset(&a, 0, sizeof(a));
		memset(&b, 0, sizeof(b));
		a.proc.pid = 5;
		a.proc.ppid = 6;
		b.proc.pid = 6;
		b.proc.ppid = 1;
		procs[0] = &a;
		procs[1] = &b;
		CHECK(img_check_tree(procs, 2) == -1, "a tree whose root's parent is in it is refused");
	}
	unlink(path);
	unlink(bad);
	free(orig);
	return unit_done("image");
}
