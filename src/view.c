/*
 * view.c: the fields of a validated ctnetlink message found once, without the
 * library: what json.c writes and aggregate.c sums. A view reads each field
 * as a flow parsed by the library would give it; messages where the
 * library's unions would show something else than the message says (an
 * address in both families, ICMP fields beside ports, several protoinfo
 * nests, an expected flow's master tuple) and those carrying what a view
 * does not hold (labels, helper, security context) are declined. No Lua.
 */
#include <string.h>
#include <netinet/in.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>

#include "lct.h"

/* 0, or -1: an address in both families, ICMP fields of both kinds. */
static int read_tuple(const struct nlattr *nest, uint8_t family, struct msg_tuple *t)
{
	const struct nlattr *tb[CTA_TUPLE_MAX + 1], *ip[CTA_IP_MAX + 1], *pr[CTA_PROTO_MAX + 1];
	int v4, v6;

	memset(t, 0, sizeof(*t));
	msg_attrs_of(MSG_PAYLOAD(nest), MSG_PAYLOAD_LEN(nest), tb, CTA_TUPLE_MAX);
	if (tb[CTA_TUPLE_IP]) {
		msg_attrs_of(MSG_PAYLOAD(tb[CTA_TUPLE_IP]), MSG_PAYLOAD_LEN(tb[CTA_TUPLE_IP]), ip, CTA_IP_MAX);
		v4 = ip[CTA_IP_V4_SRC] || ip[CTA_IP_V4_DST];
		v6 = ip[CTA_IP_V6_SRC] || ip[CTA_IP_V6_DST];
		if (v4 && v6)
			return -1;
		t->src = family == AF_INET ? ip[CTA_IP_V4_SRC] : ip[CTA_IP_V6_SRC];
		t->dst = family == AF_INET ? ip[CTA_IP_V4_DST] : ip[CTA_IP_V6_DST];
	}
	if (tb[CTA_TUPLE_PROTO]) {
		msg_attrs_of(MSG_PAYLOAD(tb[CTA_TUPLE_PROTO]), MSG_PAYLOAD_LEN(tb[CTA_TUPLE_PROTO]), pr, CTA_PROTO_MAX);
		t->proto = pr[CTA_PROTO_NUM];
		t->sport = pr[CTA_PROTO_SRC_PORT];
		t->dport = pr[CTA_PROTO_DST_PORT];
		v4 = pr[CTA_PROTO_ICMP_TYPE] || pr[CTA_PROTO_ICMP_CODE] || pr[CTA_PROTO_ICMP_ID];
		v6 = pr[CTA_PROTO_ICMPV6_TYPE] || pr[CTA_PROTO_ICMPV6_CODE] || pr[CTA_PROTO_ICMPV6_ID];
		if (v4 && v6)
			return -1;
		t->icmp[0] = v4 ? pr[CTA_PROTO_ICMP_TYPE] : pr[CTA_PROTO_ICMPV6_TYPE];
		t->icmp[1] = v4 ? pr[CTA_PROTO_ICMP_CODE] : pr[CTA_PROTO_ICMPV6_CODE];
		t->icmp[2] = v4 ? pr[CTA_PROTO_ICMP_ID] : pr[CTA_PROTO_ICMPV6_ID];
	}
	t->zone = tb[CTA_TUPLE_ZONE];
	return 0;
}

static int has_icmp(const struct msg_tuple *t)
{
	return t->icmp[0] || t->icmp[1] || t->icmp[2];
}

/* The reply has an ICMP field the original lacks: the flow would show it
 * as the original's (parse.c leaves those to the library too). */
static int reply_icmp_alone(const struct msg_view *v)
{
	int i;

	for (i = 0; i < 3; i++)
		if (v->reply.icmp[i] && !v->orig.icmp[i])
			return 1;
	return 0;
}

/* The state and vtags of the only protoinfo nest; the state only where it
 * is the flow's own protocol's. -1 where there are several (they share a
 * union in the library). */
static int read_protoinfo(const struct nlattr *nest, struct msg_view *v)
{
	const struct nlattr *pi[CTA_PROTOINFO_MAX + 1], *tb[CTA_PROTOINFO_TCP_MAX + 1];
	int which = 0, n = 0;

	msg_attrs_of(MSG_PAYLOAD(nest), MSG_PAYLOAD_LEN(nest), pi, CTA_PROTOINFO_MAX);
	if (pi[CTA_PROTOINFO_TCP])  n++, which = CTA_PROTOINFO_TCP;
	if (pi[CTA_PROTOINFO_SCTP]) n++, which = CTA_PROTOINFO_SCTP;
	if (pi[CTA_PROTOINFO_DCCP]) n++, which = CTA_PROTOINFO_DCCP;
	if (n > 1)
		return -1;
	if (n == 0)
		return 0;
	msg_attrs_of(MSG_PAYLOAD(pi[which]), MSG_PAYLOAD_LEN(pi[which]), tb, CTA_PROTOINFO_TCP_MAX);
	if (which == CTA_PROTOINFO_SCTP) {
		v->vtag[0] = tb[CTA_PROTOINFO_SCTP_VTAG_ORIGINAL];
		v->vtag[1] = tb[CTA_PROTOINFO_SCTP_VTAG_REPLY];
	}
	if ((which == CTA_PROTOINFO_TCP && v->proto == IPPROTO_TCP) ||
	    (which == CTA_PROTOINFO_SCTP && v->proto == IPPROTO_SCTP) ||
	    (which == CTA_PROTOINFO_DCCP && v->proto == IPPROTO_DCCP))
		v->state = tb[which == CTA_PROTOINFO_TCP ? CTA_PROTOINFO_TCP_STATE
		              : which == CTA_PROTOINFO_SCTP ? CTA_PROTOINFO_SCTP_STATE : CTA_PROTOINFO_DCCP_STATE];
	return 0;
}

/* The counters of one direction: packets and bytes (the 64-bit attribute
 * read over the 32-bit one, as the library does). */
static void read_counters(const struct nlattr *nest, const struct nlattr **c)
{
	const struct nlattr *tb[CTA_COUNTERS_MAX + 1];

	if (nest == NULL)
		return;
	msg_attrs_of(MSG_PAYLOAD(nest), MSG_PAYLOAD_LEN(nest), tb, CTA_COUNTERS_MAX);
	c[0] = tb[CTA_COUNTERS_PACKETS] ? tb[CTA_COUNTERS_PACKETS] : tb[CTA_COUNTERS32_PACKETS];
	c[1] = tb[CTA_COUNTERS_BYTES] ? tb[CTA_COUNTERS_BYTES] : tb[CTA_COUNTERS32_BYTES];
}

/* The view of nlh (a checked IPCTNL_MSG_CT_NEW or _DELETE message) whose
 * top-level attributes are in v->tb already (msg_check_index), reading only
 * the parts asked for beside the original tuple and the counters: 0, or -1
 * when the message is one for the library. A part left out is neither read
 * nor checked: what it would decline concerns only its own fields (the
 * reply's, ICMP's and ports', which need VIEW_REPLY; the state and vtags;
 * the timestamps). */
int msg_view_indexed(const struct nlmsghdr *nlh, struct msg_view *v, unsigned int parts)
{
	const struct nfgenmsg *nfh = mnl_nlmsg_get_payload(nlh);
	const struct nlattr *const *tb = v->tb;

	/* all but the index */
	memset((char *)v + offsetof(struct msg_view, family), 0, sizeof(*v) - offsetof(struct msg_view, family));
	v->family = nfh->nfgen_family;
	if (v->family != AF_INET && v->family != AF_INET6)
		return -1;
	/* (the library's master tuple sets ICMP fields of the flow's own) */
	if (!tb[CTA_TUPLE_ORIG] || !tb[CTA_TUPLE_REPLY] || tb[CTA_TUPLE_MASTER] || tb[CTA_HELP] || tb[CTA_SECCTX] ||
	    tb[CTA_LABELS] || read_tuple(tb[CTA_TUPLE_ORIG], v->family, &v->orig) < 0 ||
	    ((parts & VIEW_REPLY) && read_tuple(tb[CTA_TUPLE_REPLY], v->family, &v->reply) < 0))
		return -1;
	/* the library keeps ports and ICMP fields in one union per tuple, its
	 * ICMP setters write both tuples', and it marks a reply's ICMP field as
	 * the original's (an echo's reply: the same fields as its request) */
	if (v->orig.proto == NULL || reply_icmp_alone(v) ||
	    (has_icmp(&v->orig) && (v->orig.sport || v->orig.dport || v->reply.sport || v->reply.dport)))
		return -1;
	v->proto = MSG_PAYLOAD(v->orig.proto)[0];
	if ((parts & VIEW_PROTOINFO) && tb[CTA_PROTOINFO] && read_protoinfo(tb[CTA_PROTOINFO], v) < 0)
		return -1;
	read_counters(tb[CTA_COUNTERS_ORIG], v->counters[0]);
	read_counters(tb[CTA_COUNTERS_REPLY], v->counters[1]);
	if ((parts & VIEW_TIMESTAMP) && tb[CTA_TIMESTAMP]) {
		const struct nlattr *ts[CTA_TIMESTAMP_MAX + 1];
		msg_attrs_of(MSG_PAYLOAD(tb[CTA_TIMESTAMP]), MSG_PAYLOAD_LEN(tb[CTA_TIMESTAMP]), ts, CTA_TIMESTAMP_MAX);
		v->start = ts[CTA_TIMESTAMP_START];
		v->stop = ts[CTA_TIMESTAMP_STOP];
	}
	return 0;
}

/* The whole view of nlh (a validated IPCTNL_MSG_CT_NEW or _DELETE message):
 * 0, or -1 when the message is one for the library. */
int msg_view(const struct nlmsghdr *nlh, struct msg_view *v)
{
	size_t head = MNL_NLMSG_HDRLEN + MNL_ALIGN(sizeof(struct nfgenmsg));

	if (nlh->nlmsg_len < head)
		return -1;
	msg_attrs_of((const char *)nlh + head, (int)(nlh->nlmsg_len - head), v->tb, CTA_LABELS);
	return msg_view_indexed(nlh, v, VIEW_ALL);
}

uint16_t msg_be16(const struct nlattr *attr)
{
	return (uint16_t)(MSG_PAYLOAD(attr)[0] << 8 | MSG_PAYLOAD(attr)[1]);
}

uint64_t msg_counter(const struct nlattr *attr)
{
	return MSG_PAYLOAD_LEN(attr) == 8 ? msg_be64(attr) : msg_be32(attr);
}

/* snat (dnat = 0) or dnat: the reply's destination (source) is not the
 * original source (destination), by address or, where the protocol has
 * ports, by port. -1 without both addresses. */
int msg_view_nat(const struct msg_view *v, int dnat)
{
	const struct nlattr *ra = dnat ? v->reply.src : v->reply.dst, *oa = dnat ? v->orig.dst : v->orig.src;
	const struct nlattr *rp = dnat ? v->reply.sport : v->reply.dport, *op = dnat ? v->orig.dport : v->orig.sport;

	if (ra == NULL || oa == NULL)
		return -1;
	if (memcmp(MSG_PAYLOAD(ra), MSG_PAYLOAD(oa), (size_t)MSG_PAYLOAD_LEN(oa)) != 0)
		return 1;
	return msg_proto_has_ports(v->proto) && rp && op && msg_be16(rp) != msg_be16(op);
}
