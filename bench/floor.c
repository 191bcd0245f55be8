/*
 * bench/floor.c: the floor a dump can reach in user space. One libmnl dump
 * of the conntrack table, each entry parsed by libnetfilter_conntrack and
 * thrown away; prints how many there were. The benchmark's C reference.
 * `floor walk`: the walk floor, the same dump with no parse (receive and
 * iterate over the messages only): what any reader of the table pays.
 */
#include <string.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <libmnl/libmnl.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>
#include <libnetfilter_conntrack/libnetfilter_conntrack.h>

static int parse_entry(const struct nlmsghdr *nlh, void *data)
{
	struct nf_conntrack *ct = nfct_new();

	if (ct == NULL)
		return MNL_CB_ERROR;
	nfct_nlmsg_parse(nlh, ct);
	nfct_destroy(ct);
	(*(unsigned long *)data)++;
	return MNL_CB_OK;
}

static int count_entry(const struct nlmsghdr *nlh, void *data)
{
	(void)nlh;
	(*(unsigned long *)data)++;
	return MNL_CB_OK;
}

int main(int argc, char **argv)
{
	mnl_cb_t cb = argc > 1 && strcmp(argv[1], "walk") == 0 ? count_entry : parse_entry;
	static char buf[32768];
	struct mnl_socket *nl = mnl_socket_open(NETLINK_NETFILTER);
	struct nlmsghdr *nlh;
	struct nfgenmsg *nfh;
	unsigned long count = 0;
	unsigned int seq = (unsigned int)time(NULL), portid;
	int ret;

	if (nl == NULL || mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) < 0) {
		perror("mnl_socket");
		return 1;
	}
	portid = mnl_socket_get_portid(nl);
	nlh = mnl_nlmsg_put_header(buf);
	nlh->nlmsg_type = (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_GET;
	nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
	nlh->nlmsg_seq = seq;
	nfh = mnl_nlmsg_put_extra_header(nlh, sizeof(*nfh));
	nfh->nfgen_family = AF_UNSPEC;
	nfh->version = NFNETLINK_V0;
	nfh->res_id = 0;
	if (mnl_socket_sendto(nl, nlh, nlh->nlmsg_len) < 0) {
		perror("mnl_socket_sendto");
		return 1;
	}
	do {
		ret = mnl_socket_recvfrom(nl, buf, sizeof(buf));
		if (ret <= 0)
			break;
		ret = mnl_cb_run(buf, ret, seq, portid, cb, &count);
	} while (ret > 0);
	if (ret < 0) {
		perror("dump");
		return 1;
	}
	printf("%lu\n", count);
	mnl_socket_close(nl);
	return 0;
}
