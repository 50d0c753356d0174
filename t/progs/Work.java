/*
 * Work.java: a Java program for t/0910-java.bats, run with a 1 GiB heap.
 *
 *   java -Xmx1g -Xms1g -cp DIR Work [-m MIB] [-t THREADS] DIR
 *
 * Holds MIB (default 256) of long[] arrays filled with mix() (the pattern
 * of t/progs/progs.h), a HashMap of 50000 strings, and THREADS (default 4)
 * threads computing: each computes block after block of block() (a hot
 * loop the JIT compiles), stores every result and makes garbage, so the
 * collector runs.  It prints "ready PID" once every thread has results,
 * then, each time DIR/check.N appears, checks itself and prints
 * "check N: ok restored: yes|no threads T blocks B" (or one line per
 * failed check on stderr and "check N: failed"): every heap array and map
 * entry as it was made, a sample of every thread's results (the first, the
 * last and 200 between) against block() computed again, every thread alive
 * and computing on (its count grows), and whether this process is a
 * restored one (its start time in /proc/self/stat changed).  DIR/stop
 * makes it exit: 0 if every check passed, 1 if one failed.
 */
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.HashMap;
import java.util.concurrent.atomic.AtomicLongArray;

public class Work {
	static final int BLOCKS = 1 << 20;

	static long[][] arrays;
	static HashMap<String, Long> map = new HashMap<>();
	static long[][] results;
	static AtomicLongArray done;
	static volatile long sink;
	static int failures;

	/* splitmix64, as mix() in progs.h. */
	static long mix(long seed, long i)
	{
		long z = seed * 0x9e3779b97f4a7c15L + i + 1;
		z = (z ^ (z >>> 30)) * 0xbf58476d1ce4e5b9L;
		z = (z ^ (z >>> 27)) * 0x94d049bb133111ebL;
		return z ^ (z >>> 31);
	}

	/* The hot loop: the result of block b of thread t. */
	static long block(int t, long b)
	{
		long x = mix(t, b);
		double d = 1.0;
		for (int i = 0; i < 20000; i++) {
			x ^= x << 13;
			x ^= x >>> 7;
			x ^= x << 17;
			d = d * 0.999999 + (x & 0xff);
		}
		return x ^ (long) d;
	}

	static void fail(String what)
	{
		System.err.println("Work: " + what);
		failures++;
	}

	/* Field 22 of /proc/self/stat: when this process started. */
	static String startTime() throws Exception
	{
		String s = new String(Files.readAllBytes(Paths.get("/proc/self/stat")));
		String[] f = s.substring(s.lastIndexOf(')') + 2).split(" ");
		return f[22 - 3];
	}

	static void compute(int t)
	{
		long[] mine = results[t];
		for (int b = 0; b < BLOCKS; b++) {
			mine[b] = block(t, b);
			done.set(t, b + 1);
			/* Garbage, so that the collector has work. */
			long[] g = new long[64 + (b & 1023)];
			g[0] = mine[b];
			sink += g[0];
		}
	}

	static boolean check(Thread[] threads) throws Exception
	{
		int before = failures;
		int n = threads.length;
		for (int a = 0; a < arrays.length; a++)
			for (int i = 0; i < arrays[a].length; i++)
				if (arrays[a][i] != mix(1000 + a, i)) {
					fail("array " + a + " word " + i + " is not as written");
					break;
				}
		for (int i = 0; i < 50000; i++) {
			Long v = map.get("key-" + i);
			if (v == null || v != mix(7, i)) {
				fail("map entry key-" + i + " is " + v);
				break;
			}
		}
		long[] seen = new long[n];
		for (int t = 0; t < n; t++) {
			long k = done.get(t);
			seen[t] = k;
			if (!threads[t].isAlive())
				fail("thread " + t + " is not alive");
			for (long j = 0; j <= 201 && k > 0; j++) {
				long b = Math.min(k - 1, j * (k - 1) / 201);
				if (results[t][(int) b] != block(t, b))
					fail("thread " + t + " block " + b + " is " + results[t][(int) b] + ", not " + block(t, b));
			}
		}
		/* Every thread computes on: wait up to 30 s for each to finish a block. */
		long end = System.nanoTime() + 30_000_000_000L;
		for (int t = 0; t < n; t++) {
			while (done.get(t) == seen[t] && System.nanoTime() < end)
				Thread.sleep(10);
			if (done.get(t) == seen[t])
				fail("thread " + t + " computes no more (" + seen[t] + " blocks)");
		}
		return failures == before;
	}

	public static void main(String[] args) throws Exception
	{
		int mib = 256, n = 4, a = 0;
		for (; a < args.length - 1; a += 2) {
			if (args[a].equals("-m"))
				mib = Integer.parseInt(args[a + 1]);
			else if (args[a].equals("-t"))
				n = Integer.parseInt(args[a + 1]);
			else
				break;
		}
		if (a != args.length - 1) {
			System.err.println("usage: java Work [-m MIB] [-t THREADS] DIR");
			System.exit(2);
		}
		Path dir = Paths.get(args[a]);
		String started = startTime();

		arrays = new long[mib / 4][];
		for (int i = 0; i < arrays.length; i++) {
			arrays[i] = new long[512 * 1024];
			for (int j = 0; j < arrays[i].length; j++)
				arrays[i][j] = mix(1000 + i, j);
		}
		for (int i = 0; i < 50000; i++)
			map.put("key-" + i, mix(7, i));

		results = new long[n][BLOCKS];
		done = new AtomicLongArray(n);
		Thread[] threads = new Thread[n];
		for (int t = 0; t < n; t++) {
			final int me = t;
			threads[t] = new Thread(() -> compute(me), "compute-" + t);
			threads[t].setDaemon(true);
			threads[t].start();
		}
		for (int t = 0; t < n; t++)
			while (done.get(t) == 0)
				Thread.sleep(10);
		System.out.println("ready " + ProcessHandle.current().pid());

		for (int round = 1;; round++) {
			Path go = dir.resolve("check." + round);
			while (!Files.exists(go) && !Files.exists(dir.resolve("stop")))
				Thread.sleep(10);
			if (!Files.exists(go))
				break;
			boolean ok = check(threads);
			long blocks = 0;
			for (int t = 0; t < n; t++)
				blocks += done.get(t);
			String restored = startTime().equals(started) ? "no" : "yes";
			if (ok)
				System.out.println("check " + round + ": ok restored: " + restored + " threads " + n
						   + " blocks " + blocks);
			else
				System.out.println("check " + round + ": failed");
		}
		System.exit(failures == 0 ? 0 : 1);
	}
}
