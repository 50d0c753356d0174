# ckpt: one build for everything.  Targets: all check demo bench install
# uninstall clean format deps.  `make` only builds (it names the Debian
# packages a fresh machine lacks and stops); `make deps` installs them,
# and so do `make check` and `make demo`, the targets a new user runs.
VERSION   := 0.1.0
PREFIX    ?= /usr/local
DESTDIR   ?=
CC        ?= gcc
CFLAGS    ?= -O2 -g
WERROR    ?= -Werror
WARN      := -Wall -Wextra $(WERROR)
CPPFLAGS  += -D_GNU_SOURCE -DCKPT_VERSION='"$(VERSION)"' -Ilib
ALLCFLAGS := -std=gnu11 $(WARN) $(CFLAGS)
LDLIBS    := -lz -llzma -lzstd
# The workload programs are the subjects, not the tools: they are built
# plainly, so that what they check (their own sigaltstack, their leaks)
# is theirs and not a sanitizer's.
PROGCFLAGS := $(ALLCFLAGS)

ifeq ($(SANITIZE),1)
ALLCFLAGS += -fsanitize=address,undefined -fno-omit-frame-pointer
LDFLAGS   += -fsanitize=address,undefined
endif

TOOLS     := ckpt-dump ckpt-remap ckpt-inspect ckpt-gzip ckpt-coord ckpt-inject ckpt-signal ckpt-ssh
BINS      := $(addprefix bin/,$(TOOLS))
RST       := lib/restore/restorer
LIBSRC    := $(wildcard lib/*/*.c)
LIBHDR    := $(wildcard lib/*/*.h) $(RST)/restorer.h $(RST)/attrs.h
LIBOBJ    := $(LIBSRC:.c=.o) lib/restore/restorer_blob.o
PROGS     := $(patsubst %.c,%,$(wildcard t/progs/*.c))
UNITS     := $(patsubst %.c,%,$(wildcard t/unit/*.c))
# The MPI workload, once per MPI implementation whose compiler is here
# (t/0950 skips the one that is missing).
MPIPROGS  := $(if $(shell command -v mpicc.mpich),t/progs/mpi/heat-mpich) \
	$(if $(shell command -v mpicc.openmpi),t/progs/mpi/heat-ompi)
BENCHPROGS := bench/bwork bench/freshread bench/pvread bench/tcptree bench/trackcost bench/scale
MANS      := $(wildcard man/*.[1-8])
SCRIPTS   := contrib/install-deps $(wildcard contrib/*/*.sh) .ci/run t/run-tests t/check-bats t/check-includes t/lib.bash t/lib-net.bash t/lib-mpi.bash $(wildcard t/*.sh) $(wildcard t/progs/*.sh) $(wildcard completions/*) \
	bench/run

BUILD_DEPS := zlib1g-dev liblzma-dev libzstd-dev
TEST_DEPS  := bats shellcheck mandoc gzip xz-utils zstd python3 bsdutils util-linux sqlite3 \
	python3-numpy libopenblas0-pthread r-base-core perl \
	redis-server redis-tools memcached \
	munge slurmctld slurmd slurm-client openssh-server default-jdk-headless \
	tigervnc-standalone-server xvfb x11-apps xterm xdotool python3-tk \
	tmux screen vim lammps mpich libmpich-dev openmpi-bin libopenmpi-dev

FUZZERS   := image inspect coord
REPLAYS   := $(addprefix t/fuzz/replay-,$(FUZZERS))

.PHONY: all build check demo bench install uninstall clean format deps test-deps fuzz have-deps
all: have-deps
	@$(MAKE) --no-print-directory build
build: $(BINS) bin/shim/ssh $(PROGS) $(MPIPROGS) $(UNITS) $(REPLAYS)

have-deps:
	@contrib/install-deps --check $(BUILD_DEPS)
deps:
	@contrib/install-deps $(BUILD_DEPS)
test-deps:
	@contrib/install-deps $(TEST_DEPS)

lib/%.o: lib/%.c $(LIBHDR)
	$(CC) $(CPPFLAGS) $(ALLCFLAGS) -c -o $@ $<

# The restorer runs after ckpt-remap has unmapped itself: freestanding,
# position independent, no relocations, copied as a flat blob.
RST_CFLAGS := -std=gnu11 $(WARN) -O2 -fPIE -ffreestanding -fno-builtin -nostdlib \
	-fno-stack-protector -fno-asynchronous-unwind-tables -fno-exceptions \
	-fcf-protection=none -fvisibility=hidden -mno-red-zone -Ilib
$(RST)/%.o: $(RST)/%.c $(RST)/restorer.h $(RST)/attrs.h lib/base/crc32c.h lib/image/format.h
	$(CC) $(RST_CFLAGS) -c -o $@ $<
$(RST)/restorer.elf: $(RST)/restorer.o $(RST)/attrs.o $(RST)/restorer.lds
	@# An absolute address would need a loader to relocate it, and the
	@# restorer has none: only PC-relative references are allowed.
	@if readelf -rW $(filter %.o,$^) | grep -E 'R_X86_64_(64|32|32S|GOTPCREL[A-Z]*|GOT[A-Z0-9]*) ' >&2; then \
		echo "restorer.o: absolute relocations above; the restorer must be position independent" >&2; \
		exit 1; fi
	$(LD) --no-warn-rwx-segments -T $(RST)/restorer.lds -o $@ $(filter %.o,$^)
$(RST)/restorer.bin: $(RST)/restorer.elf
	objcopy -O binary --only-section=.blob $< $@
lib/restore/restorer_blob.o: lib/restore/restorer_blob.S $(RST)/restorer.bin
	$(CC) -c -o $@ $<

lib/libckpt.a: $(LIBOBJ)
	$(AR) rcs $@ $^

# ckpt-inject puts this directory first in a member's PATH (ckpt-ssh(1)).
bin/shim/ssh:
	mkdir -p bin/shim && ln -sf ../ckpt-ssh $@

bin/%: bin/%.c lib/libckpt.a
	$(CC) $(CPPFLAGS) $(ALLCFLAGS) $(LDFLAGS) -o $@ $< lib/libckpt.a $(LDLIBS)

# The programs that include the API's header.
bin/ckpt-signal t/progs/apiprog: include/ckpt.h

t/progs/%: t/progs/%.c t/progs/progs.h
	$(CC) $(CPPFLAGS) $(PROGCFLAGS) -o $@ $< -lm

# One process holding every kind at once: two programs' mains as threads.
t/progs/allkinds: t/progs/allkinds.c t/progs/fdmore.c t/progs/memkinds.c t/progs/progs.h
	$(CC) $(CPPFLAGS) $(PROGCFLAGS) -Dmain=fdmore_main -c -o $@-fd.o t/progs/fdmore.c
	$(CC) $(CPPFLAGS) $(PROGCFLAGS) -Dmain=memkinds_main -c -o $@-mem.o t/progs/memkinds.c
	$(CC) $(CPPFLAGS) $(PROGCFLAGS) -pthread -o $@ $< $@-fd.o $@-mem.o -lm
	rm -f $@-fd.o $@-mem.o

t/progs/omp: t/progs/omp.c t/progs/progs.h
	$(CC) $(CPPFLAGS) $(PROGCFLAGS) -fopenmp -o $@ $< -lm

t/progs/mpi/heat-mpich: t/progs/mpi/heat.c
	mpicc.mpich $(PROGCFLAGS) -o $@ $<
t/progs/mpi/heat-ompi: t/progs/mpi/heat.c
	mpicc.openmpi $(PROGCFLAGS) -o $@ $<

t/unit/%: t/unit/%.c t/unit/unit.h lib/libckpt.a
	$(CC) $(CPPFLAGS) $(ALLCFLAGS) $(LDFLAGS) -o $@ $< lib/libckpt.a $(LDLIBS)

# The fuzz targets' corpora, replayed without libFuzzer on every check.
t/fuzz/replay-%: t/fuzz/%.c t/fuzz/replay.c lib/libckpt.a
	$(CC) $(CPPFLAGS) $(ALLCFLAGS) $(LDFLAGS) -o $@ t/fuzz/$*.c t/fuzz/replay.c lib/libckpt.a $(LDLIBS)

# libFuzzer (Debian's clang and libclang-rt-14-dev): make fuzz FUZZ_SECONDS=N
# runs each target for N seconds on a copy of its corpus; what it finds is
# left in t/fuzz/findings/ (crash-* files to turn into regression inputs).
FUZZ_SECONDS ?= 60
FUZZ_CC      ?= clang
FUZZ_FLAGS   := -std=gnu11 -g -O1 -fsanitize=fuzzer,address,undefined -fno-omit-frame-pointer \
	-DFUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION
t/fuzz/fuzz-%: t/fuzz/%.c $(LIBSRC) $(LIBHDR) lib/restore/restorer_blob.o
	$(FUZZ_CC) $(CPPFLAGS) $(FUZZ_FLAGS) -o $@ t/fuzz/$*.c $(LIBSRC) lib/restore/restorer_blob.o $(LDLIBS)
fuzz: deps
	@$(MAKE) --no-print-directory build
	@contrib/install-deps clang libclang-rt-14-dev
	$(MAKE) $(addprefix t/fuzz/fuzz-,$(FUZZERS))
	@for f in $(FUZZERS); do \
		mkdir -p t/fuzz/findings/$$f t/fuzz/work/$$f && \
		t/fuzz/fuzz-$$f -max_total_time=$(FUZZ_SECONDS) -max_len=65536 \
			-artifact_prefix=t/fuzz/findings/$$f/ t/fuzz/work/$$f t/fuzz/corpus || exit 1; \
	done

check: deps test-deps
	@$(MAKE) --no-print-directory build
	@for u in $(UNITS); do echo "unit: $$u"; $$u || exit 1; done
	@for f in $(FUZZERS); do t/fuzz/replay-$$f t/fuzz/corpus || exit 1; done
	shellcheck $(SCRIPTS)
	@for m in $(MANS); do mandoc -Tlint -Wwarning $$m || exit 1; done
	t/check-bats
	t/check-includes
	t/run-tests

demo: deps
	@$(MAKE) --no-print-directory build
	t/demo.sh

# The benchmark's workload and fresh-memory helper are built like the
# test programs: they are subjects and yardsticks, not tools.
bench/%: bench/%.c t/progs/progs.h
	$(CC) $(CPPFLAGS) $(PROGCFLAGS) -It/progs -o $@ $< -lpthread

bench: deps
	@$(MAKE) --no-print-directory build $(BENCHPROGS)
	bench/run

# ckpt.h(3) under the names of its functions too.
API_MAN3  := ckpt_checkpoint ckpt_delay ckpt_allow ckpt_status ckpt_strerror

install: $(BINS)
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/man/man1 \
		$(DESTDIR)$(PREFIX)/share/man/man5 $(DESTDIR)$(PREFIX)/share/man/man7 \
		$(DESTDIR)$(PREFIX)/share/man/man3 $(DESTDIR)$(PREFIX)/include \
		$(DESTDIR)$(PREFIX)/share/bash-completion/completions
	install -m 755 $(BINS) $(DESTDIR)$(PREFIX)/bin
	install -d $(DESTDIR)$(PREFIX)/lib/ckpt/shim
	ln -sf ../../../bin/ckpt-ssh $(DESTDIR)$(PREFIX)/lib/ckpt/shim/ssh
	install -m 644 $(wildcard man/*.1) $(DESTDIR)$(PREFIX)/share/man/man1
	install -m 644 $(wildcard man/*.5) $(DESTDIR)$(PREFIX)/share/man/man5
	install -m 644 $(wildcard man/*.7) $(DESTDIR)$(PREFIX)/share/man/man7
	install -m 644 man/ckpt.h.3 $(DESTDIR)$(PREFIX)/share/man/man3
	for f in $(API_MAN3); do ln -sf ckpt.h.3 $(DESTDIR)$(PREFIX)/share/man/man3/$$f.3; done
	install -m 644 include/ckpt.h $(DESTDIR)$(PREFIX)/include
	install -m 644 $(wildcard completions/ckpt-*) $(DESTDIR)$(PREFIX)/share/bash-completion/completions

uninstall:
	rm -f $(addprefix $(DESTDIR)$(PREFIX)/bin/,$(TOOLS)) $(DESTDIR)$(PREFIX)/lib/ckpt/shim/ssh
	rm -f $(addprefix $(DESTDIR)$(PREFIX)/share/man/man1/,$(notdir $(wildcard man/*.1)))
	rm -f $(addprefix $(DESTDIR)$(PREFIX)/share/man/man5/,$(notdir $(wildcard man/*.5)))
	rm -f $(addprefix $(DESTDIR)$(PREFIX)/share/man/man7/,$(notdir $(wildcard man/*.7)))
	rm -f $(DESTDIR)$(PREFIX)/share/man/man3/ckpt.h.3 $(DESTDIR)$(PREFIX)/include/ckpt.h
	rm -f $(patsubst %,$(DESTDIR)$(PREFIX)/share/man/man3/%.3,$(API_MAN3))
	rm -f $(addprefix $(DESTDIR)$(PREFIX)/share/bash-completion/completions/,$(notdir $(wildcard completions/ckpt-*)))

format:
	clang-format -i lib/*/*.c lib/*/*.h $(RST)/*.c $(RST)/*.h bin/*.c t/progs/*.c t/unit/*.c

clean:
	rm -f lib/*/*.o lib/*.a $(RST)/*.o $(RST)/*.elf $(RST)/*.bin $(BINS) $(PROGS) $(UNITS)
	rm -f t/progs/mpi/heat-mpich t/progs/mpi/heat-ompi
	rm -rf bin/shim
	rm -f $(BENCHPROGS)
	rm -f t/fuzz/replay-* t/fuzz/fuzz-*
	rm -rf t/fuzz/work
	rm -rf t/tmp
