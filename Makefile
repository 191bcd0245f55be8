# lua-conntrack. `make` builds conntrack.so; `make demo` and `make test` run
# in a fresh private network namespace, so the machine's own table is never
# touched; `make check-memory` runs the suite under ASan+UBSan, then valgrind.
# LUA=lua5.3, lua5.1 or luajit builds in build/$(LUA) and tests with that Lua.
LUA      ?= lua5.4
# BUILD: where the module is linked; objects go to build/, never into src/
ifeq ($(LUA),lua5.4)
BUILD    ?= .
else
BUILD    ?= build/$(LUA)
endif
OBJDIR    = $(if $(filter .,$(BUILD)),build/$(LUA),$(BUILD))
CC       ?= cc
CFLAGS   ?= -O2 -g
# warnings are errors in this tree, not in users' builds (the rockspec clears WERROR)
WERROR   ?= -Werror
# only luaopen_conntrack is exported (lct.h marks it visible)
WARN      = -Wall -Wextra $(WERROR) -std=gnu11 -fPIC -fvisibility=hidden
# luarocks passes its own LUA_CFLAGS
LUA_CFLAGS ?= $(shell pkg-config --cflags $(LUA))
CPPFLAGS += $(LUA_CFLAGS) $(shell pkg-config --cflags libnetfilter_conntrack libmnl)
LIBS      = $(shell pkg-config --libs libnetfilter_conntrack libmnl) -pthread
OBJS      = $(patsubst src/%.c,$(OBJDIR)/src/%.o,$(wildcard src/*.c))
BUSTED   ?= busted --lua=$(LUA)
PREFIX   ?= /usr/local
LUA_VER   = $(shell $(LUA) -e 'io.write((_VERSION:gsub("Lua ", "")))')
LIBDIR   ?= $(PREFIX)/lib/lua/$(LUA_VER)
SHAREDIR ?= $(PREFIX)/share/lua/$(LUA_VER)

LUA_PACKAGES    = lua5.4 liblua5.4-dev lua5.3 liblua5.3-dev lua5.1 liblua5.1-0-dev luajit libluajit-5.1-dev
DEBIAN_PACKAGES = build-essential pkg-config $(LUA_PACKAGES) libnetfilter-conntrack-dev \
                  libmnl-dev conntrack nftables iproute2 util-linux lua-busted lua-socket lua-luv lua-cqueues luarocks valgrind \
                  clang libclang-rt-14-dev time groff-base jq zip tmux

# Runs its arguments in a new network namespace that specs recognise as theirs,
# and a mount namespace of its own where /etc/xtables (connlabel.conf, which
# specs write) is a private tmpfs: the machine's files are never touched, and
# runs of the suite can go on side by side.
IN_NETNS = unshare -n -m sh -c 'mkdir -p /etc/xtables && mount -t tmpfs lct-test /etc/xtables && \
	   ip link set lo up && export LCT_TEST_NETNS=$$(readlink /proc/self/ns/net) && exec "$$@"' netns
# The Lua under test, for specs and the processes they start; LUA_CPATH finds its build first.
TEST_ENV = env LCT_LUA=$(LUA) LCT_SO_DIR=$(BUILD) LCT_OBJ_DIR=$(OBJDIR) LUA_CPATH='$(BUILD)/?.so;;'

all: $(BUILD)/conntrack.so

$(BUILD)/conntrack.so: $(OBJS)
	$(CC) -shared $(LDFLAGS) -o $@ $(OBJS) $(LIBS)

$(OBJDIR)/src/%.o: src/%.c src/lct.h src/compat.h
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(WARN) -c -o $@ $<

# What building, testing and comparing need, from Debian 12's archive (as root).
# A mirror caught syncing fails one index for a while: retried once, then
# what apt-get has is used (the install says clearly what it cannot find).
APT_UPDATE = apt-get update -qq || { sleep 30; apt-get update -qq; } || \
	     echo "apt-get update failed for some index (a mirror syncing?): going on with what it has" >&2
deps:
	$(APT_UPDATE)
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(DEBIAN_PACKAGES) >/dev/null

# The README's tour, with loopback tracked in its namespace.
demo: $(BUILD)/conntrack.so
	unshare -n sh -c 'ip link set lo up && nft -f examples/track-loopback.nft && exec "$$@"' demo \
	  $(TEST_ENV) $(LUA) examples/demo.lua

test: $(BUILD)/conntrack.so
	$(IN_NETNS) $(TEST_ENV) $(BUSTED) $(BUSTED_ARGS)

# Fast feedback while editing: the suite less its #slow tests (repetitions
# at scale, races, soaks) and its #long ones (every case but the first of
# each differential family, the tests that build and install whole trees);
# `make test` runs everything. Two halves of about the same length (the
# command line's specs, sweeps and examples; the others) run side by side,
# each in a namespace of its own; their reports follow.
CHECK_HALF  = $(sort $(wildcard spec/ctl_*_spec.lua)) spec/sweep_spec.lua spec/examples_spec.lua
CHECK_OTHER = $(filter-out $(CHECK_HALF),$(sort $(wildcard spec/*_spec.lua)))
CHECK       = $(IN_NETNS) $(TEST_ENV) $(BUSTED) --exclude-tags=slow,long
check: $(BUILD)/conntrack.so
ifeq ($(BUSTED_ARGS),)
	@half=$$(mktemp); \
	$(CHECK) $(CHECK_HALF) >$$half 2>&1 & pid=$$!; \
	$(CHECK) $(CHECK_OTHER); other=$$?; \
	wait $$pid; status=$$?; cat $$half; rm -f $$half; [ $$status -eq 0 ] && [ $$other -eq 0 ]
else
	$(CHECK) $(BUSTED_ARGS)
endif

# The whole suite on every Lua this project supports.
test-all:
	$(MAKE) test LUA=lua5.4 && $(MAKE) test LUA=lua5.3 && $(MAKE) test LUA=lua5.1 && $(MAKE) test LUA=luajit

# Benchmarks (Lua 5.4), in a namespace of their own (not run by CI). With
# ALLOW_SYSCTL=1 the global nf_conntrack_max is raised for the largest table,
# and restored.
N ?=
BENCH_NETNS = unshare -n sh -c 'ip link set lo up && exec "$$@"' bench env LCT_SO_DIR=$(BUILD)
bench/floor: bench/floor.c
	$(CC) -O2 $(WARN) -o $@ $< $(shell pkg-config --cflags --libs libnetfilter_conntrack libmnl)

bench/delete_floor: bench/delete_floor.c
	$(CC) -O2 $(WARN) -pthread -o $@ $< $(shell pkg-config --cflags --libs libmnl)

bench: $(BUILD)/conntrack.so bench/floor bench/delete_floor
	sh bench/with-max.sh $(if $(N),$(N),1000000) $(BENCH_NETNS) $(LUA) bench/run.lua $(N)

bench-quick: $(BUILD)/conntrack.so bench/floor bench/delete_floor
	$(BENCH_NETNS) $(LUA) bench/run.lua 20000

# Fuzzing (libFuzzer, clang): each target runs FUZZ_SECONDS on its committed
# seed corpus; new crash reproducers land in fuzz/crashes/, replayed by the specs.
FUZZ_SECONDS ?= 60
FUZZ_FLAGS = -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
fuzz/%-fuzzer: fuzz/%.c $(wildcard src/*.c) src/lct.h
	clang $(FUZZ_FLAGS) $(CPPFLAGS) -o $@ $< $(wildcard src/*.c) \
	  $(shell pkg-config --libs $(LUA) libnetfilter_conntrack libmnl) -pthread

fuzz: fuzz/parse-fuzzer fuzz/filter-fuzzer fuzz/differential-fuzzer
	@for t in parse filter differential; do \
	  mkdir -p fuzz/out/$$t && fuzz/$$t-fuzzer -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
	    -artifact_prefix=fuzz/crashes/$$t- fuzz/out/$$t fuzz/corpus/$$t $$([ $$t = filter ] || echo fuzz/corpus/recorded) \
	    2>&1 | grep -E 'stat::number_of_executed_units|ERROR|SUMMARY' ; \
	done

# The sanitized module is built apart (build/asan-$(LUA)) and found by the
# specs through LCT_SO_DIR; the processes they start load the plain build
# (LCT_CHILD_SO_DIR). Lua itself is not instrumented, so the runtime is
# preloaded. valgrind, twenty times slower, runs the specs that call the
# module in their own process, which reach every C file (the command line's
# specs run it in child processes, which valgrind does not follow), less
# their #slow repetitions at scale; of sweep_spec (3,000 flows a test) one
# test for each path through sweep.c and change.c. BUSTED_ARGS chooses others.
ASAN_RT = $$($(CC) -print-file-name=libasan.so) $$($(CC) -print-file-name=libubsan.so)
MEMORY_ENV = LCT_LUA=$(LUA) LCT_CHILD_SO_DIR=$(BUILD) LCT_OBJ_DIR=$(OBJDIR)
VALGRIND_SPECS ?= spec/parse_spec.lua spec/numbers_spec.lua spec/handle_spec.lua spec/filter_spec.lua \
                  spec/dump_spec.lua spec/ops_spec.lua spec/events_spec.lua spec/interrupt_spec.lua spec/hostile_spec.lua \
                  spec/expect_spec.lua spec/json_spec.lua spec/aggregate_spec.lua spec/signals_spec.lua \
                  spec/policy_spec.lua spec/read_ahead_spec.lua
VALGRIND_SWEEP ?= --filter="by an IPv4 prefix exactly" --filter="by a predicate alone exactly" \
                  --filter="matched on the message. exactly" --filter="by mark and another field exactly" \
                  --filter="the predicate failed after" --filter="lists the flows a delete by an IPv6" \
                  --filter="sets the mark of the matched" --filter="adds a status flag" \
                  --filter="replaces, adds and removes labels"
VALGRIND = $(IN_NETNS) env $(MEMORY_ENV) LCT_SO_DIR=$(BUILD) valgrind --error-exitcode=99 --leak-check=full \
	   --errors-for-leak-kinds=definite --suppressions=$(CURDIR)/.ci/valgrind.supp -q \
	   $(LUA) $$(command -v busted)
check-memory: check-asan check-valgrind

check-asan: $(BUILD)/conntrack.so
	$(MAKE) BUILD=build/asan-$(LUA) CFLAGS="-O1 -g -fsanitize=address,undefined -fno-sanitize-recover=undefined \
	        -fno-omit-frame-pointer" LDFLAGS="-fsanitize=address,undefined"
	$(IN_NETNS) env $(MEMORY_ENV) LCT_SO_DIR=build/asan-$(LUA) LCT_SANITIZED=1 ASAN_OPTIONS=detect_leaks=1 \
	  LSAN_OPTIONS=suppressions=$(CURDIR)/.ci/lsan.supp:print_suppressions=0 \
	  LD_PRELOAD="$(ASAN_RT)" $(LUA) $$(command -v busted) $(BUSTED_ARGS)

check-valgrind: $(BUILD)/conntrack.so
ifeq ($(BUSTED_ARGS),)
	$(VALGRIND) --exclude-tags=slow $(VALGRIND_SPECS)
	$(VALGRIND) --exclude-tags=slow $(VALGRIND_SWEEP) spec/sweep_spec.lua
else
	$(VALGRIND) $(BUSTED_ARGS)
endif

# Routers' CPUs and libc, from this machine: i386 Lua 5.1 under qemu (32-bit
# integers), s390x under qemu (big-endian: every message's outputs equal x86's,
# the differential target fuzzed there for CROSS_FUZZ_SECONDS), 32-bit
# big-endian MIPS and musl compiles; what they need is installed first (each
# cross C library named: apt may leave out what a compiler only recommends).
CROSS_PACKAGES = qemu-user-static musl-tools gcc-i686-linux-gnu libc6-dev-i386-cross gcc-s390x-linux-gnu libc6-dev-s390x-cross \
                 gcc-mips-linux-gnu libc6-dev-mips-cross
CROSS_FUZZ_SECONDS ?= 60
deps-cross:
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(CROSS_PACKAGES) >/dev/null

check-cross: deps-cross
	cross/check-i386.sh
	cross/check-musl.sh
	FUZZ_SECONDS=$(CROSS_FUZZ_SECONDS) PARSE_FUZZ_SECONDS=$$(( $(CROSS_FUZZ_SECONDS) / 3 )) sh cross/check-bigendian.sh

BINDIR  ?= $(PREFIX)/bin
MANDIR  ?= $(PREFIX)/share/man
CTL_LUA  = $(wildcard lua/conntrack/ctl/*.lua)

# The command runs with the Lua it was installed for.
install: $(BUILD)/conntrack.so
	install -d $(DESTDIR)$(LIBDIR) $(DESTDIR)$(SHAREDIR)/conntrack/ctl $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man8
	install -m 755 $(BUILD)/conntrack.so $(DESTDIR)$(LIBDIR)/conntrack.so
	install -m 644 lua/ctl.lua lua/conntrack/rates.lua $(DESTDIR)$(SHAREDIR)/conntrack/
	install -m 644 $(CTL_LUA) $(DESTDIR)$(SHAREDIR)/conntrack/ctl/
	sed '1s|.*|#!/usr/bin/env $(LUA)|' lua/ctl.lua > $(DESTDIR)$(BINDIR)/lua-conntrack
	chmod 755 $(DESTDIR)$(BINDIR)/lua-conntrack
	install -m 644 doc/lua-conntrack.8 $(DESTDIR)$(MANDIR)/man8/lua-conntrack.8

# A source rock of the committed tree: the rockspec and the tarball its
# source.url names, installable offline with `luarocks install`.
VERSION = $(shell sed -n 's/^\#define LCT_VERSION "\(.*\)"/\1/p' src/lct.h)
DIST    = lua-conntrack-$(VERSION)
DISTDIR ?= build/dist
rock:
	rm -rf $(DISTDIR) && mkdir -p $(DISTDIR)
	git archive --format=tar.gz --prefix=$(DIST)/ -o $(DISTDIR)/$(DIST).tar.gz HEAD
	cp $(DIST)-1.rockspec $(DISTDIR)/
	cd $(DISTDIR) && zip -q $(DIST)-1.src.rock $(DIST)-1.rockspec $(DIST).tar.gz

clean:
	rm -rf conntrack.so src/*.o build bench/floor bench/delete_floor fuzz/*-fuzzer fuzz/out

.PHONY: all deps deps-cross demo test check test-all fuzz bench bench-quick check-memory check-asan check-valgrind check-cross install rock clean
