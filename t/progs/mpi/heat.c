/* heat: a 2-D heat diffusion (Jacobi) solver over MPI, for the MPI tests
 * and benchmark: built with mpicc of Open MPI and of MPICH as
 * t/progs/mpi/heat-ompi and heat-mpich.
 *
 *   mpirun -np R heat [-n N] [-i ITERS] [-p EVERY] [-d MS] [-f] [-T]
 *
 * An N x N grid (default 512), its top edge held at 100 and its other
 * edges at 0, split over the R ranks in a 2-D Cartesian grid of blocks
 * (MPI_Dims_create).  Each of ITERS iterations (default 2000): every rank
 * posts MPI_Irecv and MPI_Isend of its four halos, computes the points of its block that need no halo while
 * they are in flight, waits (MPI_Waitall), computes its edge points, and
 * the residual (the sum of squared changes) is summed over all ranks
 * (MPI_Allreduce).  Each halo carries the iteration it belongs to as its
 * last value: a receiver that gets another iteration's halo (a message
 * lost, or delivered twice, across a checkpoint) says so and the job
 * fails.  It sleeps MS milliseconds (default 0) after each iteration.
 * With -f the grid's inside starts filled with values of every point's
 * place (not 0), so that every page of both arrays holds data (make
 * bench: images the size of the ranks' memory).
 *
 * Rank 0 prints "heat ranks R grid N dims PxQ" first, "iter I residual
 * X" every EVERY iterations (default 100) and at the last, and at the
 * end "checksum HEX sum X": FNV-1a of every rank's block, in rank order,
 * and the sum of the grid, both exactly the same from run to run with
 * the same N, ITERS and R, however often it was checkpointed.  With -T
 * each "iter" line is followed by "time I SECONDS", the wall clock
 * (CLOCK_REALTIME) when rank 0 ended iteration I: make bench reads the
 * job's pauses and when it ran again from them.  Exits 0
 * only if every check passed. */
#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int rank, nranks;

static void die(const char *what)
{
	fprintf(stderr, "heat: rank %d: %s\n", rank, what);
	MPI_Abort(MPI_COMM_WORLD, 1);
	exit(1);
}

int main(int argc, char **argv)
{
	int n = 512, iters = 2000, every = 100, delay = 0, fill = 0, times = 0, opt;
	int dims[2] = {0, 0}, periods[2] = {0, 0}, coords[2], up, down, left, right;
	MPI_Comm cart;

	MPI_Init(&argc, &argv);
	MPI_Comm_rank(MPI_COMM_WORLD, &rank);
	MPI_Comm_size(MPI_COMM_WORLD, &nranks);
	while ((opt = getopt(argc, argv, "n:i:p:d:fT")) != -1) {
		switch (opt) {
		case 'n': n = atoi(optarg); break;
		case 'i': iters = atoi(optarg); break;
		case 'p': every = atoi(optarg); break;
		case 'd': delay = atoi(optarg); break;
		case 'f': fill = 1; break;
		case 'T': times = 1; break;
		default:
			if (rank == 0)
				fprintf(stderr, "usage: heat [-n N] [-i ITERS] [-p EVERY] [-d MS] [-f] [-T]\n");
			MPI_Finalize();
			return 2;
		}
	}
	if (n < 4 || iters < 1 || every < 1 || delay < 0)
		die("bad arguments");
	MPI_Dims_create(nranks, 2, dims);
	MPI_Cart_create(MPI_COMM_WORLD, 2, dims, periods, 0, &cart);
	MPI_Cart_coords(cart, rank, 2, coords);
	MPI_Cart_shift(cart, 0, 1, &up, &down);
	MPI_Cart_shift(cart, 1, 1, &left, &right);

	/* This rank's block: rows r0..r0+h-1 and columns c0..c0+w-1 of the
	 * grid, in an (h+2) x (w+2) array with a halo all round. */
	int h = n / dims[0] + (coords[0] < n % dims[0]);
	int w = n / dims[1] + (coords[1] < n % dims[1]);
	int r0 = coords[0] * (n / dims[0]) + (coords[0] < n % dims[0] ? coords[0] : n % dims[0]);
	int c0 = coords[1] * (n / dims[1]) + (coords[1] < n % dims[1] ? coords[1] : n % dims[1]);
	int W = w + 2;
	size_t cells = (size_t)(h + 2) * W;
	double *a = calloc(cells, sizeof(double)), *b = calloc(cells, sizeof(double));
	/* Halos sent and received, each with the iteration as its last value. */
	double *sbuf[4], *rbuf[4];
	int nb[4] = {up, down, left, right}, len[4] = {w, w, h, h};

	if (h < 1 || w < 1 || !a || !b)
		die("grid too small for the ranks, or out of memory");
	for (int k = 0; k < 4; k++) {
		sbuf[k] = malloc((len[k] + 1) * sizeof(double));
		rbuf[k] = malloc((len[k] + 1) * sizeof(double));
		if (!sbuf[k] || !rbuf[k])
			die("out of memory");
	}
	/* -f: the inside from each point's place in the grid, whatever the
	 * ranks; b too, so that both arrays are data from the start. */
	if (fill)
		for (int i = 1; i <= h; i++)
			for (int j = 1; j <= w; j++)
				a[i * W + j] = b[i * W + j] =
				    (double)(((long)(r0 + i) * 7919 + (long)(c0 + j) * 104729) % 1000) / 10;
	/* The fixed edges: the grid's top row (outside it, row -1) is 100. */
	if (r0 == 0)
		for (int j = 0; j < W; j++)
			a[j] = b[j] = 100.0;
	if (rank == 0) {
		printf("heat ranks %d grid %d dims %dx%d\n", nranks, n, dims[0], dims[1]);
		fflush(stdout);
	}

	for (int it = 1; it <= iters; it++) {
		MPI_Request req[8];
		MPI_Status st[8];
		int nreq = 0;
		double local = 0, residual;

		/* Halos out: the block's first and last rows and columns. */
		for (int k = 0; k < 4; k++) {
			if (nb[k] == MPI_PROC_NULL)
				continue;
			for (int i = 0; i < len[k]; i++)
				sbuf[k][i] = k == 0   ? a[1 * W + 1 + i]
					     : k == 1 ? a[h * W + 1 + i]
					     : k == 2 ? a[(1 + i) * W + 1]
						      : a[(1 + i) * W + w];
			sbuf[k][len[k]] = it;
			/* Tag: the direction the receiver sees it from. */
			MPI_Irecv(rbuf[k], len[k] + 1, MPI_DOUBLE, nb[k], k ^ 1, cart, &req[nreq++]);
			MPI_Isend(sbuf[k], len[k] + 1, MPI_DOUBLE, nb[k], k, cart, &req[nreq++]);
		}
		/* The inside, which needs no halo, while they are in flight. */
		for (int i = 2; i < h; i++)
			for (int j = 2; j < w; j++) {
				double v = 0.25 * (a[(i - 1) * W + j] + a[(i + 1) * W + j] +
						   a[i * W + j - 1] + a[i * W + j + 1]);
				local += (v - a[i * W + j]) * (v - a[i * W + j]);
				b[i * W + j] = v;
			}
		if (MPI_Waitall(nreq, req, st) != MPI_SUCCESS)
			die("MPI_Waitall failed");
		for (int k = 0; k < 4; k++) {
			if (nb[k] == MPI_PROC_NULL)
				continue;
			if (rbuf[k][len[k]] != it) {
				fprintf(stderr, "heat: rank %d: iteration %d: the halo from rank %d is of iteration %.0f\n",
					rank, it, nb[k], rbuf[k][len[k]]);
				MPI_Abort(MPI_COMM_WORLD, 1);
			}
			for (int i = 0; i < len[k]; i++) {
				if (k == 0)
					a[1 + i] = rbuf[k][i];
				else if (k == 1)
					a[(h + 1) * W + 1 + i] = rbuf[k][i];
				else if (k == 2)
					a[(1 + i) * W] = rbuf[k][i];
				else
					a[(1 + i) * W + w + 1] = rbuf[k][i];
			}
		}
		/* The edge points, with the halos in. */
		for (int i = 1; i <= h; i++)
			for (int j = 1; j <= w; j++) {
				if (i > 1 && i < h && j > 1 && j < w)
					continue;
				double v = 0.25 * (a[(i - 1) * W + j] + a[(i + 1) * W + j] +
						   a[i * W + j - 1] + a[i * W + j + 1]);
				local += (v - a[i * W + j]) * (v - a[i * W + j]);
				b[i * W + j] = v;
			}
		MPI_Allreduce(&local, &residual, 1, MPI_DOUBLE, MPI_SUM, cart);
		/* b is the new grid; its halo and fixed edges are a's. */
		for (int i = 0; i < h + 2; i++) {
			b[i * W] = a[i * W];
			b[i * W + w + 1] = a[i * W + w + 1];
		}
		for (int j = 0; j < W; j++) {
			b[j] = a[j];
			b[(h + 1) * W + j] = a[(h + 1) * W + j];
		}
		double *t = a;
		a = b;
		b = t;
		if (rank == 0 && (it % every == 0 || it == iters)) {
			printf("iter %d residual %.17g\n", it, residual);
			if (times) {
				struct timespec ts;
				clock_gettime(CLOCK_REALTIME, &ts);
				printf("time %d %lld.%06ld\n", it, (long long)ts.tv_sec, ts.tv_nsec / 1000);
			}
			fflush(stdout);
		}
		if (delay)
			usleep(delay * 1000);
	}

	/* Every rank's block, hashed; the hashes and sums to rank 0. */
	uint64_t hash = 0xcbf29ce484222325ull, *hashes = NULL;
	double sum = 0, *sums = NULL;
	for (int i = 1; i <= h; i++)
		for (int j = 1; j <= w; j++) {
			const unsigned char *p = (const unsigned char *)&a[i * W + j];
			for (size_t k = 0; k < sizeof(double); k++)
				hash = (hash ^ p[k]) * 0x100000001b3ull;
			sum += a[i * W + j];
		}
	if (rank == 0) {
		hashes = malloc(nranks * sizeof(*hashes));
		sums = malloc(nranks * sizeof(*sums));
		if (!hashes || !sums)
			die("out of memory");
	}
	MPI_Gather(&hash, 1, MPI_UINT64_T, hashes, 1, MPI_UINT64_T, 0, MPI_COMM_WORLD);
	MPI_Gather(&sum, 1, MPI_DOUBLE, sums, 1, MPI_DOUBLE, 0, MPI_COMM_WORLD);
	if (rank == 0) {
		uint64_t all = 0xcbf29ce484222325ull;
		double total = 0;
		for (int r = 0; r < nranks; r++) {
			for (int k = 0; k < 8; k++)
				all = (all ^ ((hashes[r] >> (8 * k)) & 0xff)) * 0x100000001b3ull;
			total += sums[r];
		}
		printf("checksum %016llx sum %.17g\n", (unsigned long long)all, total);
		fflush(stdout);
	}
	MPI_Comm_free(&cart);
	MPI_Finalize();
	return 0;
}
