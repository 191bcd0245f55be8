# lua-conntrack: `make` builds conntrack.so; `make test` runs the suite in a
# private network namespace; `make check-memory` runs it under ASan and valgrind.
LUA      ?= lua5.4
PKGS      = $(LUA) libnetfilter_conntrack libmnl
CC       ?= cc
CFLAGS   ?= -O2 -g
WARN      = -Wall -Wextra -Werror -std=gnu11 -fPIC
CPPFLAGS += $(shell pkg-config --cflags $(PKGS))
LIBS      = $(shell pkg-config --libs libnetfilter_conntrack libmnl)
SRCS      = $(wildcard src/*.c)
OBJS      = $(SRCS:.c=.o)
BUSTED   ?= busted --lua=$(LUA)
PREFIX   ?= /usr/local
LUA_VER   = $(shell pkg-config --variable=V $(LUA) 2>/dev/null || echo 5.4)
LIBDIR   ?= $(PREFIX)/lib/lua/$(LUA_VER)
SHAREDIR ?= $(PREFIX)/share/lua/$(LUA_VER)

all: conntrack.so

conntrack.so: $(OBJS)
	$(CC) -shared $(LDFLAGS) -o $@ $(OBJS) $(LIBS)

src/%.o: src/%.c src/lct.h
	$(CC) $(CPPFLAGS) $(CFLAGS) $(WARN) -c -o $@ $<

# Every spec runs in a fresh, private network namespace: the machine's own
# table is never touched.
test: conntrack.so
	unshare -n sh -c 'ip link set lo up && $(BUSTED) $(BUSTED_ARGS)'

check-memory:
	$(MAKE) clean
	$(MAKE) CFLAGS="-O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer" \
	        LDFLAGS="-fsanitize=address,undefined"
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	LSAN_OPTIONS=suppressions=$(CURDIR)/.ci/lsan.supp:print_suppressions=0 \
	LD_PRELOAD="$$($(CC) -print-file-name=libasan.so) $$($(CC) -print-file-name=libubsan.so)" \
	  unshare -n sh -c 'ip link set lo up && $(BUSTED) $(BUSTED_ARGS)'
	$(MAKE) clean all
	LCT_VALGRIND=1 unshare -n sh -c 'ip link set lo up && valgrind --error-exitcode=99 --leak-check=full \
	  --errors-for-leak-kinds=definite --trace-children=yes --suppressions=$(CURDIR)/.ci/valgrind.supp -q \
	  $(LUA) $$(command -v busted) $(BUSTED_ARGS)'

install: conntrack.so
	install -d $(DESTDIR)$(LIBDIR) $(DESTDIR)$(SHAREDIR)/conntrack
	install -m 755 conntrack.so $(DESTDIR)$(LIBDIR)/conntrack.so

clean:
	rm -f conntrack.so src/*.o

.PHONY: all test check-memory install clean
