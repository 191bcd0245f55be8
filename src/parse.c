/*
 * parse.c: a validated ctnetlink message into an nf_conntrack through the
 * library's setters: bit for bit the object nfct_payload_parse builds, at a
 * fraction of its cost (no callback per attribute). Messages with what this
 * file leaves to the library (helper, security context, labels, master tuple)
 * are declined. No Lua.
 */
#include <string.h>
#include <netinet/in.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>

#include "lct.h"

static uint16_t raw16(const struct nlattr *attr)
{
	uint16_t v;

	memcpy(&v, MSG_PAYLOAD(attr), 2);
	return v;
}

static uint8_t u8(const struct nlattr *attr)
{
	return MSG_PAYLOAD(attr)[0];
}

static void nested(const struct nlattr *nest, const struct nlattr **tb, int max)
{
	msg_attrs_of(MSG_PAYLOAD(nest), MSG_PAYLOAD_LEN(nest), tb, max);
}

/* The attributes of one direction, as the library names them. */
struct dir_attrs {
	int ip_src, ip_dst, ip6_src, ip6_dst, port_src, port_dst, l3proto, l4proto, zone;
};
static const struct dir_attrs orig_attrs = {
	ATTR_ORIG_IPV4_SRC, ATTR_ORIG_IPV4_DST, ATTR_ORIG_IPV6_SRC, ATTR_ORIG_IPV6_DST,
	ATTR_ORIG_PORT_SRC, ATTR_ORIG_PORT_DST, ATTR_ORIG_L3PROTO, ATTR_ORIG_L4PROTO, ATTR_ORIG_ZONE
};
static const struct dir_attrs reply_attrs = {
	ATTR_REPL_IPV4_SRC, ATTR_REPL_IPV4_DST, ATTR_REPL_IPV6_SRC, ATTR_REPL_IPV6_DST,
	ATTR_REPL_PORT_SRC, ATTR_REPL_PORT_DST, ATTR_REPL_L3PROTO, ATTR_REPL_L4PROTO, ATTR_REPL_ZONE
};

/* The ICMP attributes of a tuple's proto nest: type, code, id (v4 or v6). */
static void icmp_attrs(const struct nlattr *const *pr, const struct nlattr **icmp)
{
	icmp[0] = pr[CTA_PROTO_ICMPV6_TYPE] ? pr[CTA_PROTO_ICMPV6_TYPE] : pr[CTA_PROTO_ICMP_TYPE];
	icmp[1] = pr[CTA_PROTO_ICMPV6_CODE] ? pr[CTA_PROTO_ICMPV6_CODE] : pr[CTA_PROTO_ICMP_CODE];
	icmp[2] = pr[CTA_PROTO_ICMPV6_ID] ? pr[CTA_PROTO_ICMPV6_ID] : pr[CTA_PROTO_ICMP_ID];
}

/* The attributes of a tuple and of its nests (NULLs where absent). */
struct tuple_attrs {
	const struct nlattr *tb[CTA_TUPLE_MAX + 1], *ip[CTA_IP_MAX + 1], *pr[CTA_PROTO_MAX + 1];
};

static void read_tuple(const struct nlattr *nest, struct tuple_attrs *t)
{
	nested(nest, t->tb, CTA_TUPLE_MAX);
	if (t->tb[CTA_TUPLE_IP])
		nested(t->tb[CTA_TUPLE_IP], t->ip, CTA_IP_MAX);
	else
		memset(t->ip, 0, sizeof(t->ip));
	if (t->tb[CTA_TUPLE_PROTO])
		nested(t->tb[CTA_TUPLE_PROTO], t->pr, CTA_PROTO_MAX);
	else
		memset(t->pr, 0, sizeof(t->pr));
}

/* The 16-bit unions of ports and ICMP type, code and id of one direction,
 * written through the port setters; the flag is cleared again where the
 * message had no port. */
static void set_l4(struct nf_conntrack *ct, const struct dir_attrs *d, const uint8_t *l4src,
                   const uint8_t *l4dst, int src, int dst)
{
	uint16_t v;

	if (src) {
		memcpy(&v, l4src, 2);
		nfct_set_attr_u16(ct, d->port_src, v);
		if (!(src & 1))
			nfct_attr_unset(ct, d->port_src);
	}
	if (dst) {
		memcpy(&v, l4dst, 2);
		nfct_set_attr_u16(ct, d->port_dst, v);
		if (!(dst & 1))
			nfct_attr_unset(ct, d->port_dst);
	}
}

/* One tuple. The library keeps ports and the ICMP type, code and id in the
 * same unions, and marks ICMP fields with the flags of the original direction
 * whichever tuple carried them; those flags' setters also write the reply's
 * unions (set_icmp_flags, called between the two tuples): with `always`
 * the unions are written even where the message has nothing for them. */
static void set_tuple(struct nf_conntrack *ct, const struct tuple_attrs *t, uint8_t family,
                      const struct dir_attrs *d, int always)
{
	const struct nlattr *const *ip = t->ip, *const *pr = t->pr;
	uint8_t l4src[2] = { 0, 0 }, l4dst[2] = { 0, 0 };
	int src = always ? 2 : 0, dst = always ? 2 : 0;

	nfct_set_attr_u8(ct, d->l3proto, family);
	if (t->tb[CTA_TUPLE_IP]) {
		if (ip[CTA_IP_V4_SRC]) nfct_set_attr(ct, d->ip_src, MSG_PAYLOAD(ip[CTA_IP_V4_SRC]));
		if (ip[CTA_IP_V4_DST]) nfct_set_attr(ct, d->ip_dst, MSG_PAYLOAD(ip[CTA_IP_V4_DST]));
		if (ip[CTA_IP_V6_SRC]) nfct_set_attr(ct, d->ip6_src, MSG_PAYLOAD(ip[CTA_IP_V6_SRC]));
		if (ip[CTA_IP_V6_DST]) nfct_set_attr(ct, d->ip6_dst, MSG_PAYLOAD(ip[CTA_IP_V6_DST]));
	}
	if (t->tb[CTA_TUPLE_PROTO]) {
		if (pr[CTA_PROTO_NUM])
			nfct_set_attr_u8(ct, d->l4proto, u8(pr[CTA_PROTO_NUM]));
		/* the library's order of writes into the unions */
		if (pr[CTA_PROTO_SRC_PORT])    memcpy(l4src, MSG_PAYLOAD(pr[CTA_PROTO_SRC_PORT]), 2), src = 1;
		if (pr[CTA_PROTO_DST_PORT])    memcpy(l4dst, MSG_PAYLOAD(pr[CTA_PROTO_DST_PORT]), 2), dst = 1;
		if (pr[CTA_PROTO_ICMP_TYPE])   l4dst[0] = u8(pr[CTA_PROTO_ICMP_TYPE]), dst |= 2;
		if (pr[CTA_PROTO_ICMP_CODE])   l4dst[1] = u8(pr[CTA_PROTO_ICMP_CODE]), dst |= 2;
		if (pr[CTA_PROTO_ICMP_ID])     memcpy(l4src, MSG_PAYLOAD(pr[CTA_PROTO_ICMP_ID]), 2), src |= 2;
		if (pr[CTA_PROTO_ICMPV6_TYPE]) l4dst[0] = u8(pr[CTA_PROTO_ICMPV6_TYPE]), dst |= 2;
		if (pr[CTA_PROTO_ICMPV6_CODE]) l4dst[1] = u8(pr[CTA_PROTO_ICMPV6_CODE]), dst |= 2;
		if (pr[CTA_PROTO_ICMPV6_ID])   memcpy(l4src, MSG_PAYLOAD(pr[CTA_PROTO_ICMPV6_ID]), 2), src |= 2;
	}
	set_l4(ct, d, l4src, l4dst, src, dst);
	if (t->tb[CTA_TUPLE_ZONE])
		nfct_set_attr_u16(ct, d->zone, ntohs(raw16(t->tb[CTA_TUPLE_ZONE])));
}

/* The ICMP flags the library sets, with the values of the original tuple
 * (written already through its unions); the setters write the reply's too.
 * 1 if any was set. */
static int set_icmp_flags(struct nf_conntrack *ct, const struct nlattr **icmp)
{
	if (icmp[0])
		nfct_set_attr_u8(ct, ATTR_ICMP_TYPE, u8(icmp[0]));
	if (icmp[1])
		nfct_set_attr_u8(ct, ATTR_ICMP_CODE, u8(icmp[1]));
	if (icmp[2])
		nfct_set_attr_u16(ct, ATTR_ICMP_ID, raw16(icmp[2]));
	return icmp[0] || icmp[1] || icmp[2];
}

static void set_seqadj(struct nf_conntrack *ct, const struct nlattr *nest, int first)
{
	const struct nlattr *tb[CTA_SEQADJ_MAX + 1];
	int i;

	nested(nest, tb, CTA_SEQADJ_MAX);
	for (i = 0; i < 3; i++)
		if (tb[CTA_SEQADJ_CORRECTION_POS + i])
			nfct_set_attr_u32(ct, first + i, msg_be32(tb[CTA_SEQADJ_CORRECTION_POS + i]));
}

/* TCP, SCTP and DCCP share one union in the library: the order of the
 * writes is its parser's. */
static void set_protoinfo(struct nf_conntrack *ct, const struct nlattr *nest)
{
	const struct nlattr *pi[CTA_PROTOINFO_MAX + 1], *tb[CTA_PROTOINFO_TCP_MAX + 1];

	nested(nest, pi, CTA_PROTOINFO_MAX);
	if (pi[CTA_PROTOINFO_TCP]) {
		nested(pi[CTA_PROTOINFO_TCP], tb, CTA_PROTOINFO_TCP_MAX);
		if (tb[CTA_PROTOINFO_TCP_STATE])
			nfct_set_attr_u8(ct, ATTR_TCP_STATE, u8(tb[CTA_PROTOINFO_TCP_STATE]));
		if (tb[CTA_PROTOINFO_TCP_WSCALE_ORIGINAL])
			nfct_set_attr_u8(ct, ATTR_TCP_WSCALE_ORIG, u8(tb[CTA_PROTOINFO_TCP_WSCALE_ORIGINAL]));
		if (tb[CTA_PROTOINFO_TCP_WSCALE_REPLY])
			nfct_set_attr_u8(ct, ATTR_TCP_WSCALE_REPL, u8(tb[CTA_PROTOINFO_TCP_WSCALE_REPLY]));
		/* struct nf_ct_tcp_flags: the flags, then the mask */
		if (tb[CTA_PROTOINFO_TCP_FLAGS_ORIGINAL]) {
			nfct_set_attr_u8(ct, ATTR_TCP_FLAGS_ORIG, MSG_PAYLOAD(tb[CTA_PROTOINFO_TCP_FLAGS_ORIGINAL])[0]);
			nfct_set_attr_u8(ct, ATTR_TCP_MASK_ORIG, MSG_PAYLOAD(tb[CTA_PROTOINFO_TCP_FLAGS_ORIGINAL])[1]);
		}
		if (tb[CTA_PROTOINFO_TCP_FLAGS_REPLY]) {
			nfct_set_attr_u8(ct, ATTR_TCP_FLAGS_REPL, MSG_PAYLOAD(tb[CTA_PROTOINFO_TCP_FLAGS_REPLY])[0]);
			nfct_set_attr_u8(ct, ATTR_TCP_MASK_REPL, MSG_PAYLOAD(tb[CTA_PROTOINFO_TCP_FLAGS_REPLY])[1]);
		}
	}
	if (pi[CTA_PROTOINFO_SCTP]) {
		nested(pi[CTA_PROTOINFO_SCTP], tb, CTA_PROTOINFO_TCP_MAX);
		if (tb[CTA_PROTOINFO_SCTP_STATE])
			nfct_set_attr_u8(ct, ATTR_SCTP_STATE, u8(tb[CTA_PROTOINFO_SCTP_STATE]));
		if (tb[CTA_PROTOINFO_SCTP_VTAG_ORIGINAL])
			nfct_set_attr_u32(ct, ATTR_SCTP_VTAG_ORIG, msg_be32(tb[CTA_PROTOINFO_SCTP_VTAG_ORIGINAL]));
		if (tb[CTA_PROTOINFO_SCTP_VTAG_REPLY])
			nfct_set_attr_u32(ct, ATTR_SCTP_VTAG_REPL, msg_be32(tb[CTA_PROTOINFO_SCTP_VTAG_REPLY]));
	}
	if (pi[CTA_PROTOINFO_DCCP]) {
		nested(pi[CTA_PROTOINFO_DCCP], tb, CTA_PROTOINFO_TCP_MAX);
		if (tb[CTA_PROTOINFO_DCCP_STATE])
			nfct_set_attr_u8(ct, ATTR_DCCP_STATE, u8(tb[CTA_PROTOINFO_DCCP_STATE]));
		if (tb[CTA_PROTOINFO_DCCP_ROLE])
			nfct_set_attr_u8(ct, ATTR_DCCP_ROLE, u8(tb[CTA_PROTOINFO_DCCP_ROLE]));
		if (tb[CTA_PROTOINFO_DCCP_HANDSHAKE_SEQ])
			nfct_set_attr_u64(ct, ATTR_DCCP_HANDSHAKE_SEQ, msg_be64(tb[CTA_PROTOINFO_DCCP_HANDSHAKE_SEQ]));
	}
}

/* The use count, the counters and the timestamps have setters that write
 * nothing (libnetfilter_conntrack 1.0.9): those attributes are copied into a
 * small payload of their own for the library's parser. 0, or 1 if they are
 * too large for it (the whole message then goes to the library). */
static int parse_unsettable(struct nf_conntrack *ct, const struct nlattr **tb, uint8_t family)
{
	static const int types[] = { CTA_COUNTERS_ORIG, CTA_COUNTERS_REPLY, CTA_USE, CTA_TIMESTAMP };
	uint32_t words[64];          /* aligned as attributes are */
	char *buf = (char *)words;
	size_t len = 0, i;

	for (i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		const struct nlattr *attr = tb[types[i]];
		if (attr == NULL)
			continue;
		if (len + MNL_ALIGN(attr->nla_len) > sizeof(words))
			return 1;
		memcpy(buf + len, attr, attr->nla_len);
		len += MNL_ALIGN(attr->nla_len);
	}
	if (len > 0 && nfct_payload_parse(buf, len, family, ct) < 0)
		return 1;
	return 0;
}

/* nlh: validated (validate.c), of family AF_INET or AF_INET6; ct: zeroed.
 * 0 when parsed, 1 when the message is one for the library (ct must then be
 * zeroed again). */
int msg_parse_fast(const struct nlmsghdr *nlh, struct nf_conntrack *ct)
{
	const struct nlattr *tb[CTA_SYNPROXY + 1], *icmp[3], *reply_icmp[3];
	struct tuple_attrs orig, reply;
	size_t head = MNL_NLMSG_HDRLEN + MNL_ALIGN(sizeof(struct nfgenmsg));
	uint8_t family = ((const struct nfgenmsg *)mnl_nlmsg_get_payload(nlh))->nfgen_family;
	static const uint8_t zero[2] = { 0, 0 };
	int i, always;

	msg_attrs_of((const char *)nlh + head, (int)(nlh->nlmsg_len - head), tb, CTA_SYNPROXY);
	if (tb[CTA_TUPLE_MASTER] || tb[CTA_HELP] || tb[CTA_SECCTX] || tb[CTA_LABELS])
		return 1;
	/* a reply with ICMP fields the original lacks: the library's flags would
	 * mark the original's, which no setter writes without writing them */
	icmp[0] = icmp[1] = icmp[2] = NULL;
	if (tb[CTA_TUPLE_ORIG]) {
		read_tuple(tb[CTA_TUPLE_ORIG], &orig);
		icmp_attrs(orig.pr, icmp);
	}
	if (tb[CTA_TUPLE_REPLY]) {
		read_tuple(tb[CTA_TUPLE_REPLY], &reply);
		icmp_attrs(reply.pr, reply_icmp);
		for (i = 0; i < 3; i++)
			if (reply_icmp[i] && !icmp[i])
				return 1;
	}
	if (tb[CTA_TUPLE_ORIG])
		set_tuple(ct, &orig, family, &orig_attrs, 0);
	always = set_icmp_flags(ct, icmp);
	if (tb[CTA_TUPLE_REPLY])
		set_tuple(ct, &reply, family, &reply_attrs, always);
	else if (always)
		set_l4(ct, &reply_attrs, zero, zero, 2, 2);
	if (tb[CTA_SEQ_ADJ_ORIG])
		set_seqadj(ct, tb[CTA_SEQ_ADJ_ORIG], ATTR_ORIG_NAT_SEQ_CORRECTION_POS);
	if (tb[CTA_SEQ_ADJ_REPLY])
		set_seqadj(ct, tb[CTA_SEQ_ADJ_REPLY], ATTR_REPL_NAT_SEQ_CORRECTION_POS);
	if (tb[CTA_STATUS])
		nfct_set_attr_u32(ct, ATTR_STATUS, msg_be32(tb[CTA_STATUS]));
	if (tb[CTA_PROTOINFO])
		set_protoinfo(ct, tb[CTA_PROTOINFO]);
	if (tb[CTA_TIMEOUT])
		nfct_set_attr_u32(ct, ATTR_TIMEOUT, msg_be32(tb[CTA_TIMEOUT]));
	if (tb[CTA_MARK])
		nfct_set_attr_u32(ct, ATTR_MARK, msg_be32(tb[CTA_MARK]));
	if (tb[CTA_SECMARK])
		nfct_set_attr_u32(ct, ATTR_SECMARK, msg_be32(tb[CTA_SECMARK]));
	if (tb[CTA_ID])
		nfct_set_attr_u32(ct, ATTR_ID, msg_be32(tb[CTA_ID]));
	if (tb[CTA_ZONE])
		nfct_set_attr_u16(ct, ATTR_ZONE, ntohs(raw16(tb[CTA_ZONE])));
	if (tb[CTA_SYNPROXY]) {
		const struct nlattr *sp[CTA_SYNPROXY_MAX + 1];
		nested(tb[CTA_SYNPROXY], sp, CTA_SYNPROXY_MAX);
		if (sp[CTA_SYNPROXY_ISN])
			nfct_set_attr_u32(ct, ATTR_SYNPROXY_ISN, msg_be32(sp[CTA_SYNPROXY_ISN]));
		if (sp[CTA_SYNPROXY_ITS])
			nfct_set_attr_u32(ct, ATTR_SYNPROXY_ITS, msg_be32(sp[CTA_SYNPROXY_ITS]));
		if (sp[CTA_SYNPROXY_TSOFF])
			nfct_set_attr_u32(ct, ATTR_SYNPROXY_TSOFF, msg_be32(sp[CTA_SYNPROXY_TSOFF]));
	}
	return parse_unsettable(ct, tb, family);
}

/* sizeof(struct nf_conntrack), which the library hides: nfct_maxsize() is
 * deprecated as a way to allocate objects, which is not how it is used here
 * (flows embed the object, scratch objects are zeroed in place). */
size_t msg_ct_size(void)
{
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
	return nfct_maxsize();
#pragma GCC diagnostic pop
}

/* A message checked (msg_check) into a zeroed ct: by msg_parse_fast, or by
 * the library for what that leaves to it (ct zeroed again: it set nothing
 * that owns memory). 0, or -1. */
int msg_parse(const struct nlmsghdr *nlh, struct nf_conntrack *ct)
{
	const struct nfgenmsg *nfh = mnl_nlmsg_get_payload(nlh);
	size_t head = MNL_NLMSG_HDRLEN + MNL_ALIGN(sizeof(struct nfgenmsg));

	if (msg_check(nlh) < 0)
		return -1;
	if (msg_parse_fast(nlh, ct) == 0)
		return 0;
	memset(ct, 0, msg_ct_size());
	/* not nfct_nlmsg_parse: it takes the whole message length for the
	 * payload's and so reads past the end of the message */
	return nfct_payload_parse((const char *)nlh + head, nlh->nlmsg_len - head, nfh->nfgen_family, ct) < 0 ? -1 : 0;
}
