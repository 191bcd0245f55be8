/*
 * validate.c: a ctnetlink message checked against the layout the parser of
 * libnetfilter_conntrack expects, before it reads a byte. That parser calls
 * exit() on an attribute of the wrong size ("kernel ABI is broken") and
 * reads strings up to their NUL: a malformed or crafted message must stop
 * here, as an error, instead of ending the process. No Lua.
 */
#include <string.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>

#include "lct.h"

enum { ANY = 0, NESTED = -1, STRING = -2 };   /* else: the exact payload size */

struct rule {
	uint16_t type;
	int16_t size;
	const struct rule *nest;   /* the rules inside a nested attribute */
};

#define END { 0, 0, NULL }

static const struct rule ip[] = {
	{ CTA_IP_V4_SRC, 4, NULL }, { CTA_IP_V4_DST, 4, NULL },
	{ CTA_IP_V6_SRC, 16, NULL }, { CTA_IP_V6_DST, 16, NULL }, END
};
static const struct rule proto[] = {
	{ CTA_PROTO_NUM, 1, NULL }, { CTA_PROTO_SRC_PORT, 2, NULL }, { CTA_PROTO_DST_PORT, 2, NULL },
	{ CTA_PROTO_ICMP_ID, 2, NULL }, { CTA_PROTO_ICMP_TYPE, 1, NULL }, { CTA_PROTO_ICMP_CODE, 1, NULL },
	{ CTA_PROTO_ICMPV6_ID, 2, NULL }, { CTA_PROTO_ICMPV6_TYPE, 1, NULL }, { CTA_PROTO_ICMPV6_CODE, 1, NULL },
	END
};
static const struct rule tuple[] = {
	{ CTA_TUPLE_IP, NESTED, ip }, { CTA_TUPLE_PROTO, NESTED, proto }, { CTA_TUPLE_ZONE, 2, NULL }, END
};
static const struct rule tcp[] = {
	{ CTA_PROTOINFO_TCP_STATE, 1, NULL }, { CTA_PROTOINFO_TCP_WSCALE_ORIGINAL, 1, NULL },
	{ CTA_PROTOINFO_TCP_WSCALE_REPLY, 1, NULL }, { CTA_PROTOINFO_TCP_FLAGS_ORIGINAL, 2, NULL },
	{ CTA_PROTOINFO_TCP_FLAGS_REPLY, 2, NULL }, END
};
static const struct rule sctp[] = {
	{ CTA_PROTOINFO_SCTP_STATE, 1, NULL }, { CTA_PROTOINFO_SCTP_VTAG_ORIGINAL, 4, NULL },
	{ CTA_PROTOINFO_SCTP_VTAG_REPLY, 4, NULL }, END
};
static const struct rule dccp[] = {
	{ CTA_PROTOINFO_DCCP_STATE, 1, NULL }, { CTA_PROTOINFO_DCCP_ROLE, 1, NULL },
	{ CTA_PROTOINFO_DCCP_HANDSHAKE_SEQ, 8, NULL }, END
};
static const struct rule protoinfo[] = {
	{ CTA_PROTOINFO_TCP, NESTED, tcp }, { CTA_PROTOINFO_SCTP, NESTED, sctp },
	{ CTA_PROTOINFO_DCCP, NESTED, dccp }, END
};
static const struct rule counters[] = {
	{ CTA_COUNTERS_PACKETS, 8, NULL }, { CTA_COUNTERS_BYTES, 8, NULL },
	{ CTA_COUNTERS32_PACKETS, 4, NULL }, { CTA_COUNTERS32_BYTES, 4, NULL }, END
};
static const struct rule nat_seq[] = {
	{ CTA_SEQADJ_CORRECTION_POS, 4, NULL }, { CTA_SEQADJ_OFFSET_BEFORE, 4, NULL },
	{ CTA_SEQADJ_OFFSET_AFTER, 4, NULL }, END
};
static const struct rule help[] = { { CTA_HELP_NAME, STRING, NULL }, END };
static const struct rule secctx[] = { { CTA_SECCTX_NAME, STRING, NULL }, END };
static const struct rule timestamp[] = { { CTA_TIMESTAMP_START, 8, NULL }, { CTA_TIMESTAMP_STOP, 8, NULL }, END };
static const struct rule synproxy[] = {
	{ CTA_SYNPROXY_ISN, 4, NULL }, { CTA_SYNPROXY_ITS, 4, NULL }, { CTA_SYNPROXY_TSOFF, 4, NULL }, END
};
static const struct rule conntrack[] = {
	{ CTA_TUPLE_ORIG, NESTED, tuple }, { CTA_TUPLE_REPLY, NESTED, tuple }, { CTA_TUPLE_MASTER, NESTED, tuple },
	{ CTA_NAT_SEQ_ADJ_ORIG, NESTED, nat_seq }, { CTA_NAT_SEQ_ADJ_REPLY, NESTED, nat_seq },
	{ CTA_PROTOINFO, NESTED, protoinfo }, { CTA_COUNTERS_ORIG, NESTED, counters },
	{ CTA_COUNTERS_REPLY, NESTED, counters }, { CTA_HELP, NESTED, help }, { CTA_SECCTX, NESTED, secctx },
	{ CTA_TIMESTAMP, NESTED, timestamp }, { CTA_SYNPROXY, NESTED, synproxy },
	{ CTA_STATUS, 4, NULL }, { CTA_TIMEOUT, 4, NULL }, { CTA_MARK, 4, NULL }, { CTA_SECMARK, 4, NULL },
	{ CTA_USE, 4, NULL }, { CTA_ID, 4, NULL }, { CTA_ZONE, 2, NULL }, END
};

static const struct rule *rule_for(const struct rule *rules, uint16_t type)
{
	for (; rules->type != 0; rules++)
		if (rules->type == type)
			return rules;
	return NULL;
}

static int check_attr(const struct nlattr *attr, const struct rule *r, int depth);

/* Every attribute of a level lies within it and follows its rule. */
static int check_level(const void *start, int left, const struct rule *rules, int depth)
{
	const struct nlattr *attr = start;

	if (depth > 4)
		return -1;
	while (mnl_attr_ok(attr, left)) {
		const struct rule *r = rule_for(rules, mnl_attr_get_type(attr));
		if (r != NULL && check_attr(attr, r, depth) < 0)
			return -1;
		left -= MNL_ALIGN(attr->nla_len);
		attr = mnl_attr_next(attr);
	}
	/* what is left must be padding, not a truncated attribute */
	return left < (int)sizeof(struct nlattr) ? 0 : -1;
}

static int check_attr(const struct nlattr *attr, const struct rule *r, int depth)
{
	uint16_t len = mnl_attr_get_payload_len(attr);
	const char *payload = mnl_attr_get_payload(attr);

	switch (r->size) {
	case ANY:
		return 0;
	case STRING:
		/* read up to its NUL: it must have one */
		return len > 0 && memchr(payload, '\0', len) != NULL ? 0 : -1;
	case NESTED:
		if (len == 0)
			return 0;
		if (len < MNL_ATTR_HDRLEN)
			return -1;
		return check_level(payload, len, r->nest, depth + 1);
	}
	return len == r->size ? 0 : -1;
}

int nl_validate_attrs(const struct nlmsghdr *nlh)
{
	size_t head = MNL_NLMSG_HDRLEN + MNL_ALIGN(sizeof(struct nfgenmsg));

	if (nlh->nlmsg_len < head)
		return -1;
	return check_level((const char *)nlh + head, (int)(nlh->nlmsg_len - head), conntrack, 0);
}
