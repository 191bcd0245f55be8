/*
 * wait.c: waiting for descriptors with the timeouts of next and each
 * (seconds from 0, nil or math.huge for ever), for subscriptions and
 * signals alike. A long wait goes in slices; a signal that made lua.c set
 * its hook (Ctrl-C) ends the wait, so that the hook runs at once.
 */
#include <errno.h>
#include <float.h>
#include <poll.h>
#include <time.h>

#include "lct.h"

double lct_now(clockid_t clock)
{
	struct timespec ts;

	clock_gettime(clock, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Seconds, any finite number >= 0; nil or inf: for ever (-1). */
double lct_check_timeout(lua_State *L, int idx)
{
	double t;

	if (lua_isnoneornil(L, idx))
		return -1;
	t = luaL_checknumber(L, idx);
	if (!(t >= 0))   /* NaN too */
		luaL_error(L, "bad argument 'timeout': expected seconds >= 0, got %f", t);
	return t > DBL_MAX ? -1 : t;
}

/* The longest single wait: a longer timeout is waited in slices, so that
 * no count of milliseconds overflows an int. */
#define WAIT_SLICE_MS 3600000

/* Milliseconds for poll: -1 for ever (timeout < 0), else what is left until
 * deadline, rounded up, at most a slice. */
static int poll_ms(double timeout, double deadline)
{
	double left = (deadline - lct_now(CLOCK_MONOTONIC)) * 1000;
	int ms;

	if (timeout < 0)
		return -1;
	if (left >= WAIT_SLICE_MS)
		return WAIT_SLICE_MS;
	if (left <= 0)
		return 0;
	ms = (int)left;
	return ms < left ? ms + 1 : ms;
}

/* Waits until one of the descriptors is readable or the deadline passes
 * (a deadline from lct_now(CLOCK_MONOTONIC) + timeout): 1 to read again, 0
 * to return (the deadline passed, or lua.c's hook waits to run), -errno. */
int lct_wait_readable(lua_State *L, struct pollfd *p, int n, double timeout, double deadline)
{
	lua_Hook hook = lua_gethook(L);

	if (timeout >= 0 && deadline - lct_now(CLOCK_MONOTONIC) <= 0)
		return 0;
	if (poll(p, (nfds_t)n, poll_ms(timeout, deadline)) < 0) {
		if (errno != EINTR)
			return -errno;
		if (lua_gethook(L) != hook)
			return 0;
	}
	return 1;
}
