/*
 * ahead.c: a dump's datagrams received ahead by a thread of its own. The
 * kernel builds each datagram of a dump inside the receive call that takes
 * the one before, so a reader alone waits for the kernel, then the kernel
 * for the reader. With a second CPU the thread receives (and the kernel
 * builds) while the loop reads the datagram at hand: a dump takes about
 * the kernel's time. Started at a reply's second datagram, on machines
 * with more than one CPU only; stopped and joined when its socket closes.
 * The thread runs no Lua, blocks every signal and touches only its ring.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/eventfd.h>

#include "lct.h"

#define SLOTS 4
#define SPINS 2000         /* yields before sleeping: about a millisecond */

struct ahead {
	struct nl *nl;
	unsigned int seq;
	pthread_t thread;
	pid_t pid;                 /* of the process that started it (a fork's child has no thread) */
	int wake;                  /* eventfd: stop */
	pthread_mutex_t lock;
	pthread_cond_t filled_cond, room_cond;
	unsigned long filled, taken;   /* datagrams received, and handed to the reply */
	int stop, ended;           /* asked to stop; received the end of the reply (or failed) */
	ssize_t len[SLOTS];        /* a slot's length, or -errno */
	char slot[SLOTS][LCT_RECV_SIZE];
};

/* Does the datagram end the reply (as nl_reply_next will find)? */
static int ends_reply(const char *buf, ssize_t n, unsigned int seq)
{
	const struct nlmsghdr *nlh = (const struct nlmsghdr *)buf;
	int left = (int)n;

	for (; mnl_nlmsg_ok(nlh, left); nlh = mnl_nlmsg_next(nlh, &left))
		if (nlh->nlmsg_seq == seq && (nlh->nlmsg_type == NLMSG_DONE || nlh->nlmsg_type == NLMSG_ERROR ||
		                              nlh->nlmsg_type == NLMSG_OVERRUN || (nlh->nlmsg_flags & NLM_F_DUMP_INTR)))
			return 1;
	return left != 0;   /* a malformed rest: the reply ends there */
}

/* One datagram into buf: its length or -errno; 0 when asked to stop. */
static ssize_t receive(struct ahead *a, char *buf)
{
	struct pollfd fds[2] = { { .fd = mnl_socket_get_fd(a->nl->sock), .events = POLLIN }, { .fd = a->wake, .events = POLLIN } };
	ssize_t n;

	while ((n = nl_receive(a->nl, buf, LCT_RECV_SIZE, MSG_DONTWAIT)) == 0) {
		if (poll(fds, 2, -1) < 0 && errno != EINTR)
			return -errno;
		if (fds[1].revents)
			return 0;
	}
	return n;
}

static void *read_ahead(void *arg)
{
	struct ahead *a = arg;

	for (;;) {
		char *buf;
		ssize_t n;
		int last;

		pthread_mutex_lock(&a->lock);
		while (a->filled - a->taken == SLOTS && !a->stop)
			pthread_cond_wait(&a->room_cond, &a->lock);
		last = a->stop;
		pthread_mutex_unlock(&a->lock);
		if (last)
			break;
		buf = a->slot[a->filled % SLOTS];
		if ((n = receive(a, buf)) == 0)
			break;
		last = n < 0 || ends_reply(buf, n, a->seq);
		pthread_mutex_lock(&a->lock);
		a->len[a->filled % SLOTS] = n;
		__atomic_store_n(&a->filled, a->filled + 1, __ATOMIC_RELEASE);
		__atomic_store_n(&a->ended, last, __ATOMIC_RELEASE);
		pthread_cond_signal(&a->filled_cond);
		pthread_mutex_unlock(&a->lock);
		if (last)
			break;
	}
	pthread_mutex_lock(&a->lock);
	__atomic_store_n(&a->ended, 1, __ATOMIC_RELEASE);
	pthread_cond_signal(&a->filled_cond);
	pthread_mutex_unlock(&a->lock);
	return NULL;
}

/* The CPUs this thread may run on (taskset, cpusets): a reader thread
 * sharing the only one would only add switches. */
static int cpus(void)
{
	cpu_set_t set;

	if (sched_getaffinity(0, sizeof(set), &set) < 0)
		return 1;
	return CPU_COUNT(&set);
}

/* Starts receiving the rest of the reply to seq on nl ahead (nl->ahead): 0,
 * or -errno (nothing started; the reply goes on without). One CPU: -ENOTSUP. */
int nl_ahead_start(struct nl *nl, unsigned int seq)
{
	struct ahead *a;
	pthread_attr_t attr;
	sigset_t all, old;
	int err;

	if (cpus() < 2)
		return -ENOTSUP;
	if ((a = malloc(sizeof(*a))) == NULL)
		return -ENOMEM;
	a->nl = nl;
	a->seq = seq;
	a->pid = getpid();
	a->filled = a->taken = 0;
	a->stop = a->ended = 0;
	if ((a->wake = eventfd(0, EFD_CLOEXEC)) < 0) {
		err = -errno;
		free(a);
		return err;
	}
	pthread_mutex_init(&a->lock, NULL);
	pthread_cond_init(&a->filled_cond, NULL);
	pthread_cond_init(&a->room_cond, NULL);
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, 64 * 1024);
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	err = -pthread_create(&a->thread, &attr, read_ahead, a);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	pthread_attr_destroy(&attr);
	if (err) {
		close(a->wake);
		free(a);
		return err;
	}
	nl->ahead = a;
	return 0;
}

/* The next datagram into buf (LCT_RECV_SIZE bytes): its length, -errno, or
 * 0 when the thread has ended with nothing left (receive it directly). A
 * fork's child that reads on has no thread, nor a lock to trust: it receives
 * directly from the socket it shares with its parent, as without the thread. */
ssize_t nl_ahead_take(struct ahead *a, char *buf)
{
	ssize_t n;
	int spins;

	if (a->pid != getpid())
		return 0;

	/* the next datagram is usually a few microseconds away: waiting for it
	 * by yielding a while is cheaper than sleeping and being woken */
	for (spins = 0; spins < SPINS && __atomic_load_n(&a->filled, __ATOMIC_ACQUIRE) == a->taken &&
	                !__atomic_load_n(&a->ended, __ATOMIC_ACQUIRE); spins++)
		sched_yield();
	pthread_mutex_lock(&a->lock);
	while (a->filled == a->taken && !a->ended)
		pthread_cond_wait(&a->filled_cond, &a->lock);
	if (a->filled == a->taken) {
		pthread_mutex_unlock(&a->lock);
		return 0;
	}
	pthread_mutex_unlock(&a->lock);
	/* the thread leaves a filled slot alone until it is taken */
	n = a->len[a->taken % SLOTS];
	if (n > 0)
		memcpy(buf, a->slot[a->taken % SLOTS], (size_t)n);
	pthread_mutex_lock(&a->lock);
	a->taken++;
	pthread_cond_signal(&a->room_cond);
	pthread_mutex_unlock(&a->lock);
	return n;
}

/* Stops and joins the thread, before its socket closes. In a fork's child
 * there is no thread (nor a lock to trust): only the memory is freed. */
void nl_ahead_stop(struct ahead *a)
{
	uint64_t one = 1;

	if (a->pid == getpid()) {
		pthread_mutex_lock(&a->lock);
		a->stop = 1;
		pthread_cond_signal(&a->room_cond);
		pthread_mutex_unlock(&a->lock);
		if (write(a->wake, &one, sizeof(one)) < 0) {
			/* cannot fail: the counter is far from its maximum */
		}
		pthread_join(a->thread, NULL);
		pthread_mutex_destroy(&a->lock);
		pthread_cond_destroy(&a->filled_cond);
		pthread_cond_destroy(&a->room_cond);
	}
	close(a->wake);
	free(a);
}
