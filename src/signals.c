/*
 * signals.c: chosen signals read as events from a signalfd, so that a
 * daemon's loop hears SIGTERM and SIGHUP where plain Lua cannot: the object
 * conntrack.signals{ "TERM", "HUP" } for any event loop, and the watch a
 * subscription keeps for ct:events{ signals = ... }. While a watch lives
 * its signals are blocked in the calling thread (a signalfd reads only
 * blocked signals); closing it unblocks each one no other watch of the Lua
 * state still wants, unless it was blocked before the first watch.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>
#include <sys/signalfd.h>

#include "lct.h"

#define LCT_SIGMASK "conntrack.signals.mask"   /* registry: the state's struct sigmask */

/* What the watches of one Lua state did to the thread's signal mask. */
struct sigmask {
	int count[NSIG];        /* how many open watches read each signal */
	sigset_t was_blocked;   /* blocked before the first of them */
};

/* Signals a process is sent to stop, reload or be told something; not
 * those a fault raises (SEGV...), which blocking would turn into a kill,
 * nor KILL and STOP, which cannot be caught. */
static const struct { const char *name; int num; } names[] = {
	{ "HUP", SIGHUP }, { "INT", SIGINT }, { "QUIT", SIGQUIT }, { "USR1", SIGUSR1 }, { "USR2", SIGUSR2 },
	{ "PIPE", SIGPIPE }, { "ALRM", SIGALRM }, { "TERM", SIGTERM }, { "CHLD", SIGCHLD }, { "CONT", SIGCONT },
	{ "TSTP", SIGTSTP }, { "TTIN", SIGTTIN }, { "TTOU", SIGTTOU }, { "URG", SIGURG }, { "XCPU", SIGXCPU },
	{ "XFSZ", SIGXFSZ }, { "VTALRM", SIGVTALRM }, { "PROF", SIGPROF }, { "WINCH", SIGWINCH }, { "IO", SIGIO },
	{ "PWR", SIGPWR },
};
#define NNAMES ((int)(sizeof(names) / sizeof(names[0])))

const char *lct_signal_name(int signo)
{
	int i;

	for (i = 0; i < NNAMES; i++)
		if (names[i].num == signo)
			return names[i].name;
	return "?";
}

static void add_name(lua_State *L, int idx, const char *key, sigset_t *set)
{
	const char *s;
	int i;

	if (lua_type(L, idx) != LUA_TSTRING)
		luaL_error(L, "bad argument '%s': expected signal names, got %s", key, luaL_typename(L, idx));
	s = lct_check_cstring(L, idx, key);
	if (strncmp(s, "SIG", 3) == 0)
		s += 3;
	if (strcmp(s, "KILL") == 0 || strcmp(s, "STOP") == 0)
		luaL_error(L, "bad argument '%s': SIG%s cannot be caught", key, s);
	for (i = 0; i < NNAMES; i++)
		if (strcmp(names[i].name, s) == 0) {
			sigaddset(set, names[i].num);
			return;
		}
	luaL_error(L, "bad argument '%s': unknown signal \"%s\"", key, lua_tostring(L, idx));
}

/* { "TERM", "HUP" } (or "SIGTERM"...) at idx into set; raises on a bad name. */
void lct_signals_parse(lua_State *L, int idx, const char *key, sigset_t *set)
{
	int n = 0;

	idx = lua_absindex(L, idx);
	sigemptyset(set);
	if (lua_type(L, idx) != LUA_TTABLE)
		luaL_error(L, "bad argument '%s': expected a list of signal names, got %s", key, luaL_typename(L, idx));
	lua_pushnil(L);
	while (lua_next(L, idx)) {
		add_name(L, -1, key, set);
		n++;
		lua_pop(L, 1);
	}
	if (n == 0)
		luaL_error(L, "bad argument '%s': no signal named", key);
}

/* Opens a watch of set: 0, or -errno with nothing blocked. */
int lct_sigwatch_open(lua_State *L, struct sigwatch *w, const sigset_t *set)
{
	struct sigmask *m;
	sigset_t current;
	int s;

	lua_getfield(L, LUA_REGISTRYINDEX, LCT_SIGMASK);
	m = lua_touserdata(L, -1);
	lua_pop(L, 1);   /* the registry keeps it for the state's life */
	if (m == NULL)
		return luaL_error(L, "signals: the module was not opened in this Lua state");
	if ((w->fd = signalfd(-1, set, SFD_NONBLOCK | SFD_CLOEXEC)) < 0)
		return -errno;
	w->set = *set;
	w->mask = m;
	sigprocmask(SIG_BLOCK, NULL, &current);
	for (s = 1; s < NSIG; s++)
		if (sigismember(set, s) == 1 && m->count[s]++ == 0) {
			if (sigismember(&current, s) == 1)
				sigaddset(&m->was_blocked, s);
			else
				sigdelset(&m->was_blocked, s);
		}
	sigprocmask(SIG_BLOCK, set, NULL);
	return 0;
}

/* Idempotent; no Lua (it runs from __gc). A signal that came meanwhile and
 * was not read is delivered as the mask is restored, as it would have been
 * without the watch. */
void lct_sigwatch_close(struct sigwatch *w)
{
	sigset_t unblock;
	int s;

	if (w->fd < 0)
		return;
	close(w->fd);
	w->fd = -1;
	sigemptyset(&unblock);
	for (s = 1; s < NSIG; s++)
		if (sigismember(&w->set, s) == 1 && --w->mask->count[s] == 0 && sigismember(&w->mask->was_blocked, s) != 1)
			sigaddset(&unblock, s);
	sigprocmask(SIG_UNBLOCK, &unblock, NULL);
}

/* One signal, without blocking: its number, 0 if none waits, or -errno.
 * *pid: who sent it (0 for the kernel). */
int lct_sigwatch_read(struct sigwatch *w, uint32_t *pid)
{
	struct signalfd_siginfo si;
	ssize_t n;

	if (w->fd < 0)
		return 0;
	while ((n = read(w->fd, &si, sizeof(si))) < 0 && errno == EINTR)
		;
	if (n < 0)
		return errno == EAGAIN ? 0 : -errno;
	if (n != (ssize_t)sizeof(si))
		return -EIO;
	*pid = si.ssi_pid;
	return (int)si.ssi_signo;
}

/* ---- conntrack.signals{ ... }: the object ---- */

struct signals {
	struct sigwatch w;
	int error;          /* the errno of the failure raised last */
};

static struct signals *check_signals(lua_State *L, int idx)
{
	struct signals *s = luaL_checkudata(L, idx, LCT_SIGNALS);

	if (s->w.fd < 0)
		luaL_error(L, "attempt to use a closed signals object");
	return s;
}

static int signals_close(lua_State *L)
{
	lct_sigwatch_close(&((struct signals *)luaL_checkudata(L, 1, LCT_SIGNALS))->w);
	return 0;
}

/* Pushes name, pid of the next signal and returns 2, or returns 0 if none
 * waits; raises on a failure. */
static int push_signal(lua_State *L, struct signals *s)
{
	uint32_t pid = 0;
	int rc = lct_sigwatch_read(&s->w, &pid);

	if (rc < 0)
		return lct_raise(L, &s->error, "signals", -rc);
	if (rc == 0)
		return 0;
	lua_pushstring(L, lct_signal_name(rc));
	lct_push_uint(L, pid);
	return 2;
}

/* The next signal within timeout seconds (< 0: for ever): 2 pushed, or 0. */
static int next_signal(lua_State *L, struct signals *s, double timeout)
{
	double deadline = lct_now(CLOCK_MONOTONIC) + timeout;
	int rc;

	for (;;) {
		struct pollfd p = { s->w.fd, POLLIN, 0 };
		if ((rc = push_signal(L, s)) != 0)
			return rc;
		if ((rc = lct_wait_readable(L, &p, 1, timeout, deadline)) < 0)
			return lct_raise(L, &s->error, "signals", -rc);
		if (rc == 0)
			return 0;
	}
}

/* s:next([timeout]) -> name, pid | nil, "timeout" */
static int signals_next(lua_State *L)
{
	struct signals *s = check_signals(L, 1);
	double timeout = lct_check_timeout(L, 2);

	if (next_signal(L, s, timeout) > 0)
		return 2;
	lua_pushnil(L);
	lua_pushliteral(L, "timeout");
	return 2;
}

/* the generic-for step of s:each(quiet): upvalue 1 is the quiet time (-1: for ever) */
static int each_step(lua_State *L)
{
	struct signals *s = check_signals(L, 1);

	if (next_signal(L, s, lua_tonumber(L, lua_upvalueindex(1))) > 0)
		return 2;
	lua_pushnil(L);
	return 1;
}

/* for name, pid in s:each([quiet]) do: ends after quiet seconds without a signal */
static int signals_each(lua_State *L)
{
	check_signals(L, 1);
	lua_pushnumber(L, lct_check_timeout(L, 2));
	lua_pushcclosure(L, each_step, 1);
	lua_pushvalue(L, 1);
	return 2;
}

/* s:dispatch{ TERM = fn, HUP = fn }: calls each signal's handler with
 * (name, pid) for the signals already waiting, without blocking; returns
 * how many it handled. A signal without a handler is read and dropped. */
static int signals_dispatch(lua_State *L)
{
	struct signals *s = check_signals(L, 1);
	lua_Integer handled = 0;
	sigset_t set;
	int i;

	luaL_checktype(L, 2, LUA_TTABLE);
	lua_settop(L, 2);
	/* a misspelt name, or one never read, would silently drop its signals */
	lua_pushnil(L);
	while (lua_next(L, 2)) {
		sigemptyset(&set);
		add_name(L, -2, "handlers", &set);
		for (i = 1; i < NSIG && sigismember(&set, i) != 1; i++)
			;
		if (sigismember(&s->w.set, i) != 1)
			return luaL_error(L, "bad argument '%s': not one of the signals read", lua_tostring(L, -2));
		if (!lua_isfunction(L, -1))
			return luaL_error(L, "bad argument '%s': expected a function, got %s", lua_tostring(L, -2),
			                  luaL_typename(L, -1));
		lua_pop(L, 1);
	}
	/* stack: handlers(2), then name(3), pid(4) of each signal */
	while (s->w.fd >= 0 && push_signal(L, s) > 0) {
		lua_pushvalue(L, 3);
		if (lua_rawget(L, 2) == LUA_TNIL) {
			lua_pop(L, 1);
			lua_pushfstring(L, "SIG%s", lua_tostring(L, 3));
			lua_rawget(L, 2);
		}
		if (lua_isnil(L, -1)) {
			lua_settop(L, 2);
			continue;
		}
		lua_insert(L, 3);
		lua_call(L, 2, 0);
		handled++;
		lua_settop(L, 2);
	}
	lua_pushinteger(L, handled);
	return 1;
}

/* s:pending(): is a signal waiting? Never blocks. */
static int signals_pending(lua_State *L)
{
	struct signals *s = check_signals(L, 1);
	struct pollfd p = { s->w.fd, POLLIN, 0 };

	lua_pushboolean(L, poll(&p, 1, 0) > 0);
	return 1;
}

static int signals_getfd(lua_State *L)
{
	lua_pushinteger(L, check_signals(L, 1)->w.fd);
	return 1;
}

/* cqueues' pollable protocol: readable, no timeout of its own */
static int signals_events(lua_State *L)
{
	check_signals(L, 1);
	lua_pushliteral(L, "r");
	return 1;
}

static int signals_timeout(lua_State *L)
{
	check_signals(L, 1);
	lua_pushnil(L);
	return 1;
}

/* s:error() -> nil, or the message and errno of the failure raised last */
static int signals_error(lua_State *L)
{
	return lct_push_last_error(L, "signals", ((struct signals *)luaL_checkudata(L, 1, LCT_SIGNALS))->error);
}

static int signals_tostring(lua_State *L)
{
	struct signals *s = luaL_checkudata(L, 1, LCT_SIGNALS);
	luaL_Buffer b;
	int i;

	if (s->w.fd < 0) {
		lua_pushliteral(L, "conntrack.signals (closed)");
		return 1;
	}
	luaL_buffinit(L, &b);
	lua_pushfstring(L, "conntrack.signals (fd %d:", s->w.fd);
	luaL_addvalue(&b);
	for (i = 0; i < NNAMES; i++)
		if (sigismember(&s->w.set, names[i].num) == 1) {
			luaL_addchar(&b, ' ');
			luaL_addstring(&b, names[i].name);
		}
	luaL_addchar(&b, ')');
	luaL_pushresult(&b);
	return 1;
}

/* conntrack.signals{ "TERM", "HUP" } -> signals | nil, message, errno */
static int signals_new(lua_State *L)
{
	struct signals *s;
	sigset_t set;
	int rc;

	lct_signals_parse(L, 1, "signals", &set);
	s = lua_newuserdatauv(L, sizeof(*s), 0);
	s->w.fd = -1;
	s->error = 0;
	luaL_setmetatable(L, LCT_SIGNALS);
	if ((rc = lct_sigwatch_open(L, &s->w, &set)) < 0)
		return lct_fail(L, "signals", -rc);
	return 1;
}

void lct_signals_open(lua_State *L, int module)
{
	static const luaL_Reg meta[] = {
		{ "__gc", signals_close }, { "__close", signals_close }, { "__tostring", signals_tostring },
		{ NULL, NULL }
	};
	static const luaL_Reg methods[] = {
		{ "next", signals_next }, { "each", signals_each }, { "dispatch", signals_dispatch },
		{ "pending", signals_pending }, { "getfd", signals_getfd }, { "fd", signals_getfd },
		{ "pollfd", signals_getfd }, { "events", signals_events }, { "timeout", signals_timeout },
		{ "error", signals_error }, { "close", signals_close },
		{ NULL, NULL }
	};
	struct sigmask *m;

	module = lua_absindex(L, module);
	/* one per state, even if the module is opened again: watches point to it */
	if (lua_getfield(L, LUA_REGISTRYINDEX, LCT_SIGMASK) == LUA_TNIL) {
		m = lua_newuserdatauv(L, sizeof(*m), 0);
		memset(m->count, 0, sizeof(m->count));
		sigemptyset(&m->was_blocked);
		lua_setfield(L, LUA_REGISTRYINDEX, LCT_SIGMASK);
	}
	lua_pop(L, 1);
	lct_new_class(L, LCT_SIGNALS, meta, methods);
	lua_pushcfunction(L, signals_new);
	lua_setfield(L, module, "signals");
}
