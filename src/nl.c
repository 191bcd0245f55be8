/*
 * nl.c: the netlink layer, free of Lua. Opens ctnetlink sockets (in another
 * network namespace if asked), sends requests and walks their replies one
 * message at a time, validating each one. Failures are returned as -errno;
 * a closed socket is -EBADF, never a crash.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>
#include <linux/netlink.h>
#include <linux/netfilter/nfnetlink.h>

#include "lct.h"

/* Enter netns_fd, open and bind the socket there (to multicast groups, for
 * events), come back. A socket keeps the namespace it was created in, so
 * only its creation needs the switch. */
int nl_open(struct nl *nl, int netns_fd, unsigned int groups)
{
	int home = -1, err = 0;

	nl->sock = NULL;
	nl->ahead = NULL;
	if (netns_fd >= 0) {
		home = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
		if (home < 0)
			return -errno;
		if (setns(netns_fd, CLONE_NEWNET) < 0) {
			err = -errno;
			close(home);
			return err;
		}
	}
	nl->sock = mnl_socket_open2(NETLINK_NETFILTER, SOCK_CLOEXEC);
	if (nl->sock == NULL)
		err = -errno;
	else if (mnl_socket_bind(nl->sock, groups, MNL_SOCKET_AUTOPID) < 0)
		err = -errno;
	if (home >= 0) {
		if (setns(home, CLONE_NEWNET) < 0 && err == 0)
			err = -errno;
		close(home);
	}
	if (err) {
		nl_close(nl);
		return err;
	}
	nl->portid = mnl_socket_get_portid(nl->sock);
	/* distinct starting points keep replies of two handles apart in traces */
	nl->seq = (unsigned int)time(NULL) ^ (nl->portid << 16);
	return 0;
}

void nl_close(struct nl *nl)
{
	if (nl->sock != NULL) {
		if (nl->ahead != NULL) {
			nl_ahead_stop(nl->ahead);
			nl->ahead = NULL;
		}
		mnl_socket_close(nl->sock);
		nl->sock = NULL;
	}
}

int nl_fd(const struct nl *nl)
{
	return nl->sock ? mnl_socket_get_fd(nl->sock) : -1;
}

/* buf must hold LCT_REQUEST_MAX bytes, zeroed here: the library's builders
 * leave some padding unwritten, and no stale byte should reach the kernel. */
struct nlmsghdr *nl_ct_header(char *buf, uint16_t type, uint16_t flags, uint8_t family)
{
	struct nlmsghdr *nlh;
	struct nfgenmsg *nfh;

	memset(buf, 0, LCT_REQUEST_MAX);
	nlh = mnl_nlmsg_put_header(buf);

	nlh->nlmsg_type = (NFNL_SUBSYS_CTNETLINK << 8) | type;
	nlh->nlmsg_flags = NLM_F_REQUEST | flags;
	nfh = mnl_nlmsg_put_extra_header(nlh, sizeof(*nfh));
	nfh->nfgen_family = family;
	/* version 1 asks the kernel to honour nfgen_family (flush, dump) */
	nfh->version = 1;   /* NFNETLINK_V1, newer than these headers */
	nfh->res_id = 0;
	return nlh;
}

/* The same for a request to the expectation table. */
struct nlmsghdr *nl_exp_header(char *buf, uint16_t type, uint16_t flags, uint8_t family)
{
	struct nlmsghdr *nlh = nl_ct_header(buf, type, flags, family);

	nlh->nlmsg_type = (NFNL_SUBSYS_CTNETLINK_EXP << 8) | type;
	return nlh;
}

int nl_send(struct nl *nl, struct nlmsghdr *nlh)
{
	if (nl->sock == NULL)
		return -EBADF;
	if (++nl->seq == 0)
		nl->seq = 1;
	nlh->nlmsg_seq = nl->seq;
	if (mnl_socket_sendto(nl->sock, nlh, nlh->nlmsg_len) < 0)
		return -errno;
	return 0;
}

void nl_reply_init(struct nl_reply *r, struct nl *nl, char *buf, size_t cap)
{
	r->nl = nl;
	r->seq = nl->seq;
	r->buf = buf;
	r->cap = cap;
	r->len = r->off = 0;
	r->done = 0;
	r->read_ahead = 0;
	r->received = 0;
}

/* The next datagram of a reply: 0, or -errno. A dump that goes on past its
 * first datagram has the rest received ahead, where a thread can. */
static int receive(struct nl_reply *r)
{
	ssize_t n = 0;

	if (r->read_ahead && r->received == 1 && r->nl->sock != NULL && r->nl->ahead == NULL &&
	    r->cap >= LCT_RECV_SIZE)
		nl_ahead_start(r->nl, r->seq);
	if (r->nl->ahead != NULL)
		n = nl_ahead_take(r->nl->ahead, r->buf);
	if (n == 0)
		n = nl_receive(r->nl, r->buf, r->cap, 0);
	r->received++;

	if (n < 0)
		return (int)n;
	r->len = (size_t)n;
	r->off = 0;
	return 0;
}

/* 1 and *msg: the next data message; 0: the reply is complete; -errno: the
 * kernel's error, or a reply that cannot be trusted. */
int nl_reply_next(struct nl_reply *r, const struct nlmsghdr **msg)
{
	for (;;) {
		const struct nlmsghdr *nlh;
		int left, err;

		if (r->done)
			return 0;
		if (r->off >= r->len && (err = receive(r)) < 0)
			return err;
		nlh = (const struct nlmsghdr *)(r->buf + r->off);
		left = (int)(r->len - r->off);
		if (!mnl_nlmsg_ok(nlh, left)) {
			r->done = 1;
			return -EBADMSG;
		}
		r->off += NLMSG_ALIGN(nlh->nlmsg_len) < (unsigned)left ? NLMSG_ALIGN(nlh->nlmsg_len) : (unsigned)left;

		/* a reply to an earlier, abandoned request on this socket */
		if (nlh->nlmsg_seq != r->seq)
			continue;
		if (!mnl_nlmsg_portid_ok(nlh, r->nl->portid)) {
			r->done = 1;
			return -ESRCH;
		}
		switch (nlh->nlmsg_type) {
		case NLMSG_NOOP:
			continue;
		case NLMSG_ERROR: {
			const struct nlmsgerr *e = mnl_nlmsg_get_payload(nlh);
			r->done = 1;
			if (nlh->nlmsg_len < mnl_nlmsg_size(sizeof(*e)))
				return -EBADMSG;
			return e->error < 0 ? e->error : 0;
		}
		case NLMSG_DONE: {
			int e = 0;
			r->done = 1;
			if (mnl_nlmsg_get_payload_len(nlh) >= (int)sizeof(int))
				memcpy(&e, mnl_nlmsg_get_payload(nlh), sizeof(e));
			if (e < 0)
				return e;
			/* netlink_dump_done marks the DONE of a dump whose generation
			 * changed, even when no data message carried the mark */
			return nlh->nlmsg_flags & NLM_F_DUMP_INTR ? -EINTR : 0;
		}
		case NLMSG_OVERRUN:
			r->done = 1;
			return -ENOBUFS;
		}
		if (nlh->nlmsg_flags & NLM_F_DUMP_INTR) {
			r->done = 1;
			return -EINTR;
		}
		*msg = nlh;
		return 1;
	}
}

/* Does the datagram at hand hold more of the reply (no receive needed)? */
int nl_reply_buffered(const struct nl_reply *r)
{
	return !r->done && r->off < r->len;
}

/* Send a request and hand each message of its reply to cb, which returns
 * MNL_CB_OK to go on, MNL_CB_STOP or MNL_CB_ERROR (errno set) to stop. The
 * rest of the reply is drained so the socket is clean for the next request. */
int nl_request(struct nl *nl, struct nlmsghdr *nlh, char *buf, size_t cap,
               int (*cb)(const struct nlmsghdr *, void *), void *data)
{
	struct nl_reply r;
	const struct nlmsghdr *msg;
	int rc, result = 0, stopped = 0;

	if ((rc = nl_send(nl, nlh)) < 0)
		return rc;
	nl_reply_init(&r, nl, buf, cap);
	while ((rc = nl_reply_next(&r, &msg)) > 0) {
		if (stopped || cb == NULL)
			continue;
		errno = 0;
		switch (cb(msg, data)) {
		case MNL_CB_STOP:
			stopped = 1;
			break;
		case MNL_CB_ERROR:
			stopped = 1;
			result = errno ? -errno : -EPROTO;
			break;
		}
	}
	if (rc < 0 && result == 0)
		result = rc;
	return result;
}

/* ---- batches: many requests in one sendmsg, every acknowledgement read ---- */

/* Acknowledgements queue up in the socket while the kernel works through a
 * batch; a receive buffer too small for them loses some (ENOBUFS). As root
 * the buffer is forced past rmem_max. Returns the size in effect. */
int nl_set_rcvbuf(struct nl *nl, int bytes)
{
	int fd = nl_fd(nl), size;
	socklen_t len = sizeof(size);

	if (fd < 0)
		return -EBADF;
	if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &bytes, sizeof(bytes)) < 0)
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bytes, sizeof(bytes));
	if (getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, &len) < 0)
		return -errno;
	return size;
}

void nl_batch_init(struct nl_batch *b)
{
	b->len = 0;
	b->count = 0;
}

/* Room for one more request of at most LCT_REQUEST_MAX bytes? */
int nl_batch_full(const struct nl_batch *b)
{
	return b->count == LCT_BATCH_MSGS || b->len + LCT_REQUEST_MAX > sizeof(b->buf);
}

char *nl_batch_slot(struct nl_batch *b)
{
	return b->buf + b->len;
}

/* The request built at nl_batch_slot() joins the batch. */
void nl_batch_commit(struct nl_batch *b, struct nlmsghdr *nlh)
{
	b->len += NLMSG_ALIGN(nlh->nlmsg_len);
	b->count++;
}

/* Sends the batch and counts its outcome into acks. Only the last request
 * asks for an acknowledgement: the kernel answers a failed request with an
 * error whether asked or not, and works through a batch in order, so when
 * the last one is answered every error is in, and the others succeeded.
 * (An ack per request costs the kernel a message and this process a
 * receive each.) A request for a flow that is gone (ENOENT) is counted
 * apart: it vanished, which is no failure. The first other error is kept in
 * acks->error. */
int nl_batch_send(struct nl *nl, struct nl_batch *b, char *buf, size_t cap, struct nl_acks *acks)
{
	unsigned int first, last, failed = 0;
	struct nlmsghdr *nlh = NULL;
	size_t off;
	int n, done = 0;

	acks->nfailed = 0;
	if (b->count == 0)
		return 0;
	if (nl->sock == NULL)
		return -EBADF;
	first = nl->seq + 1;
	for (off = 0; off < b->len; off += NLMSG_ALIGN(nlh->nlmsg_len)) {
		nlh = (struct nlmsghdr *)(b->buf + off);
		if (++nl->seq == 0)
			nl->seq = 1;
		nlh->nlmsg_seq = nl->seq;
		nlh->nlmsg_flags &= ~NLM_F_ACK;
	}
	nlh->nlmsg_flags |= NLM_F_ACK;
	last = nl->seq;
	if (mnl_socket_sendto(nl->sock, b->buf, b->len) < 0)
		return -errno;
	while (!done) {
		struct nl_reply r;
		int left;

		nl_reply_init(&r, nl, buf, cap);
		if ((n = receive(&r)) < 0)
			return n;
		left = (int)r.len;
		for (nlh = (struct nlmsghdr *)buf; mnl_nlmsg_ok(nlh, left); nlh = mnl_nlmsg_next(nlh, &left)) {
			const struct nlmsgerr *e = mnl_nlmsg_get_payload(nlh);
			/* sequence numbers may wrap inside a batch */
			if (nlh->nlmsg_type != NLMSG_ERROR || nlh->nlmsg_seq - first > last - first ||
			    nlh->nlmsg_len < mnl_nlmsg_size(sizeof(*e)))
				continue;
			if (nlh->nlmsg_seq == last)
				done = 1;
			if (e->error == 0)
				continue;
			if (acks->nfailed < LCT_BATCH_MSGS && nlh->nlmsg_seq - first < b->count) {
				acks->failed[acks->nfailed].index = (uint16_t)(nlh->nlmsg_seq - first);
				acks->failed[acks->nfailed++].error = -e->error;
			}
			failed++;
			if (e->error == -ENOENT)
				acks->gone++;
			else if (acks->error == 0)
				acks->error = -e->error;
		}
	}
	acks->ok += b->count - failed;
	nl_batch_init(b);
	return 0;
}
