/*
 * fuzz/record.c: writes the kernel's own ctnetlink messages to files, one
 * message a file, byte for byte, for the fuzz corpus and spec/parse_spec.lua.
 *   record dump DIR      one dump of the table: DIR/NNN-dump
 *   record events DIR    every event until SIGTERM: DIR/NNN-new|update|destroy
 * Run it only in a private network namespace (fuzz/record-corpus.sh).
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/socket.h>
#include <libmnl/libmnl.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>

static volatile sig_atomic_t stop;
static unsigned int count;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static const char *kind(const struct nlmsghdr *nlh, int dump)
{
	if (dump)
		return "dump";
	if (NFNL_MSG_TYPE(nlh->nlmsg_type) == IPCTNL_MSG_CT_DELETE)
		return "destroy";
	return nlh->nlmsg_flags & (NLM_F_CREATE | NLM_F_EXCL) ? "new" : "update";
}

/* Every ctnetlink data message of a datagram into its own file. */
static int save(const char *dir, const char *buf, int len, int dump)
{
	const struct nlmsghdr *nlh = (const struct nlmsghdr *)buf;

	for (; mnl_nlmsg_ok(nlh, len); nlh = mnl_nlmsg_next(nlh, &len)) {
		char path[4096];
		FILE *f;

		if (nlh->nlmsg_type == NLMSG_DONE)
			return 1;
		if (nlh->nlmsg_type == NLMSG_ERROR || NFNL_SUBSYS_ID(nlh->nlmsg_type) != NFNL_SUBSYS_CTNETLINK)
			continue;
		snprintf(path, sizeof(path), "%s/%03u-%s", dir, count++, kind(nlh, dump));
		if ((f = fopen(path, "wb")) == NULL || fwrite(nlh, nlh->nlmsg_len, 1, f) != 1 || fclose(f) != 0) {
			perror(path);
			exit(1);
		}
	}
	return 0;
}

int main(int argc, char **argv)
{
	static char buf[1 << 16];
	unsigned int groups = NF_NETLINK_CONNTRACK_NEW | NF_NETLINK_CONNTRACK_UPDATE |
	                      NF_NETLINK_CONNTRACK_DESTROY;
	struct mnl_socket *nl;
	int dump, len;

	if (argc != 3 || (strcmp(argv[1], "dump") != 0 && strcmp(argv[1], "events") != 0)) {
		fprintf(stderr, "usage: record dump|events DIR\n");
		return 2;
	}
	dump = strcmp(argv[1], "dump") == 0;
	nl = mnl_socket_open(NETLINK_NETFILTER);
	if (nl == NULL || mnl_socket_bind(nl, dump ? 0 : groups, MNL_SOCKET_AUTOPID) < 0) {
		perror("netlink");
		return 1;
	}
	if (dump) {
		struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
		struct nfgenmsg *nfh;

		nlh->nlmsg_type = (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_GET;
		nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
		nlh->nlmsg_seq = (unsigned int)time(NULL);
		nfh = mnl_nlmsg_put_extra_header(nlh, sizeof(*nfh));
		nfh->nfgen_family = AF_UNSPEC;
		nfh->version = NFNETLINK_V0;
		if (mnl_socket_sendto(nl, nlh, nlh->nlmsg_len) < 0) {
			perror("send");
			return 1;
		}
		while ((len = (int)mnl_socket_recvfrom(nl, buf, sizeof(buf))) > 0)
			if (save(argv[2], buf, len, 1))
				break;
		return len < 0 ? 1 : 0;
	}
	/* events: until SIGTERM, then what is already queued */
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	for (;;) {
		struct pollfd p = { .fd = mnl_socket_get_fd(nl), .events = POLLIN };
		int ready = poll(&p, 1, stop ? 0 : 100);

		if (ready < 0 && errno != EINTR) {
			perror("poll");
			return 1;
		}
		if (ready <= 0) {
			if (stop)
				break;
			continue;
		}
		if ((len = (int)mnl_socket_recvfrom(nl, buf, sizeof(buf))) < 0) {
			perror("recv");   /* ENOBUFS: events were lost */
			return 1;
		}
		save(argv[2], buf, len, 0);
	}
	mnl_socket_close(nl);
	return 0;
}
