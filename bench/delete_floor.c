/*
 * bench/delete_floor.c: the floor a delete by mark can reach in user space,
 * the C reference for `ct:delete{ mark = { 1, 1 } }`. Prints how many flows
 * it deleted, then the seconds its dump and its deletes took.
 *   delete_floor [THREADS]  a dump the kernel filters by mark & 1 == 1, kept
 *                           in memory, then a delete request for each flow
 *                           (tuple, zone, id), in batches of 256 that ask for
 *                           one ack, from THREADS threads (1 by default), each
 *                           on its own socket with its share of the requests
 *   delete_floor kernel     the kernel's own delete by mark: one request, no
 *                           lookups, and no count (prints 0 0 and its time)
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <arpa/inet.h>
#include <libmnl/libmnl.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>

#define BATCH 256
#define MAX_THREADS 8

struct requests {
	char *buf;
	size_t len, cap;
	unsigned long count;
};

struct share {
	const struct requests *r;
	size_t off, end;
	unsigned long deleted;
	int error;
};

static double now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void die(const char *what)
{
	perror(what);
	exit(1);
}

static struct mnl_socket *open_socket(void)
{
	struct mnl_socket *nl = mnl_socket_open(NETLINK_NETFILTER);
	int size = 1 << 24;

	if (nl == NULL || mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) < 0)
		die("mnl_socket");
	setsockopt(mnl_socket_get_fd(nl), SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof(size));
	return nl;
}

static struct nlmsghdr *ct_header(char *buf, uint16_t type, uint16_t flags, uint8_t family)
{
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	struct nfgenmsg *nfh;

	nlh->nlmsg_type = (NFNL_SUBSYS_CTNETLINK << 8) | type;
	nlh->nlmsg_flags = NLM_F_REQUEST | flags;
	nfh = mnl_nlmsg_put_extra_header(nlh, sizeof(*nfh));
	nfh->nfgen_family = family;
	nfh->version = NFNETLINK_V0;
	nfh->res_id = 0;
	return nlh;
}

static void put_mark(struct nlmsghdr *nlh)
{
	mnl_attr_put_u32(nlh, CTA_MARK, htonl(1));
	mnl_attr_put_u32(nlh, CTA_MARK_MASK, htonl(1));
}

/* A dumped flow becomes the request that deletes it, as the module's sweep builds it. */
static int keep_request(const struct nlmsghdr *msg, void *data)
{
	struct requests *r = data;
	const struct nfgenmsg *nfh = mnl_nlmsg_get_payload(msg);
	const struct nlattr *attr;
	struct nlmsghdr *nlh;

	if (r->cap - r->len < (size_t)MNL_SOCKET_BUFFER_SIZE) {
		r->cap = r->cap ? 2 * r->cap : 1 << 24;
		if ((r->buf = realloc(r->buf, r->cap)) == NULL)
			die("realloc");
	}
	nlh = ct_header(r->buf + r->len, IPCTNL_MSG_CT_DELETE, 0, nfh->nfgen_family);
	mnl_attr_for_each(attr, msg, sizeof(*nfh)) {
		uint16_t type = mnl_attr_get_type(attr);
		if (type == CTA_TUPLE_ORIG || type == CTA_ZONE || type == CTA_ID)
			mnl_attr_put(nlh, attr->nla_type, mnl_attr_get_payload_len(attr), mnl_attr_get_payload(attr));
	}
	r->len += NLMSG_ALIGN(nlh->nlmsg_len);
	r->count++;
	return MNL_CB_OK;
}

static void dump_by_mark(struct requests *r)
{
	static char buf[32768];
	struct mnl_socket *nl = open_socket();
	struct nlmsghdr *nlh = ct_header(buf, IPCTNL_MSG_CT_GET, NLM_F_DUMP, AF_UNSPEC);
	unsigned int seq = (unsigned int)time(NULL), portid = mnl_socket_get_portid(nl);
	int ret;

	nlh->nlmsg_seq = seq;
	put_mark(nlh);
	if (mnl_socket_sendto(nl, nlh, nlh->nlmsg_len) < 0)
		die("mnl_socket_sendto");
	do {
		ret = mnl_socket_recvfrom(nl, buf, sizeof(buf));
		if (ret <= 0)
			break;
		ret = mnl_cb_run(buf, ret, seq, portid, keep_request, r);
	} while (ret > 0);
	if (ret < 0)
		die("dump");
	mnl_socket_close(nl);
}

/* Sends the share's requests in batches; only a batch's last asks for an
 * ack, failures answer anyway. */
static void *delete_share(void *data)
{
	struct share *s = data;
	char buf[32768];
	struct mnl_socket *nl = open_socket();
	unsigned int seq = 0;
	size_t off = s->off;

	while (off < s->end && s->error == 0) {
		size_t first = off;
		struct nlmsghdr *nlh = NULL;
		unsigned long n;
		int done = 0;

		for (n = 0; n < BATCH && off < s->end; n++, off += NLMSG_ALIGN(nlh->nlmsg_len)) {
			nlh = (struct nlmsghdr *)(s->r->buf + off);
			nlh->nlmsg_seq = ++seq;
		}
		nlh->nlmsg_flags |= NLM_F_ACK;
		if (mnl_socket_sendto(nl, s->r->buf + first, off - first) < 0)
			die("mnl_socket_sendto");
		s->deleted += n;
		while (!done) {
			int left = (int)mnl_socket_recvfrom(nl, buf, sizeof(buf));
			const struct nlmsghdr *m;

			if (left < 0)
				die("recv");
			for (m = (void *)buf; mnl_nlmsg_ok(m, left); m = mnl_nlmsg_next(m, &left)) {
				const struct nlmsgerr *e = mnl_nlmsg_get_payload(m);
				if (m->nlmsg_type != NLMSG_ERROR)
					continue;
				done |= m->nlmsg_seq == seq;
				if (e->error != 0) {
					s->deleted--;
					if (e->error != -ENOENT)
						s->error = -e->error;
				}
			}
		}
	}
	mnl_socket_close(nl);
	return NULL;
}

static unsigned long delete_all(const struct requests *r, int threads)
{
	pthread_t tid[MAX_THREADS];
	struct share shares[MAX_THREADS];
	unsigned long i = 0, deleted = 0;
	size_t off = 0;
	int t;

	for (t = 0; t < threads; t++) {
		unsigned long end = r->count * (t + 1) / threads;
		shares[t] = (struct share){ .r = r, .off = off };
		for (; i < end; i++)
			off += NLMSG_ALIGN(((const struct nlmsghdr *)(r->buf + off))->nlmsg_len);
		shares[t].end = off;
		if (pthread_create(&tid[t], NULL, delete_share, &shares[t]) != 0)
			die("pthread_create");
	}
	for (t = 0; t < threads; t++) {
		pthread_join(tid[t], NULL);
		if (shares[t].error != 0) {
			errno = shares[t].error;
			die("delete");
		}
		deleted += shares[t].deleted;
	}
	return deleted;
}

static void kernel_delete(void)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct mnl_socket *nl = open_socket();
	struct nlmsghdr *nlh = ct_header(buf, IPCTNL_MSG_CT_DELETE, NLM_F_ACK, AF_UNSPEC);
	int ret;

	nlh->nlmsg_seq = 1;
	put_mark(nlh);
	if (mnl_socket_sendto(nl, nlh, nlh->nlmsg_len) < 0)
		die("mnl_socket_sendto");
	ret = mnl_socket_recvfrom(nl, buf, sizeof(buf));
	if (ret < 0 || mnl_cb_run(buf, ret, 1, mnl_socket_get_portid(nl), NULL, NULL) < 0)
		die("delete by mark");
	mnl_socket_close(nl);
}

int main(int argc, char **argv)
{
	struct requests r = { 0 };
	int threads = 1;
	unsigned long deleted;
	double start, dumped;

	if (argc > 1 && strcmp(argv[1], "kernel") == 0) {
		start = now();
		kernel_delete();
		printf("0 0 %.3f\n", now() - start);
		return 0;
	}
	if (argc > 1)
		threads = atoi(argv[1]);
	if (threads < 1 || threads > MAX_THREADS) {
		fprintf(stderr, "usage: delete_floor [THREADS (1-%d) | kernel]\n", MAX_THREADS);
		return 2;
	}
	start = now();
	dump_by_mark(&r);
	dumped = now();
	deleted = delete_all(&r, threads);
	printf("%lu %.3f %.3f\n", deleted, dumped - start, now() - dumped);
	free(r.buf);
	return 0;
}
