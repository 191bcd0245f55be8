/*
 * validate.c: a ctnetlink message checked against the layout the parser of
 * libnetfilter_conntrack expects, before it reads a byte. That parser calls
 * exit() on an attribute of the wrong size ("kernel ABI is broken") and
 * reads strings up to their NUL: a malformed or crafted message must stop
 * here, as an error, instead of ending the process (flows, and expectations:
 * msg_check_expect). A checked message is
 * read by type with msg_attrs_of (parse.c, format.c, filter.c). No Lua.
 */
#include <string.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>

#include "lct.h"

#ifndef CTA_TIMESTAMP_EVENT
#define CTA_TIMESTAMP_EVENT 27   /* Linux 6.12's headers and later: when the kernel made an event, ns */
#endif

/* else: the exact payload size */
enum { ANY = 0, NESTED = -1, STRING = -2, LABELS = -3, EXPECTFN = -4 };
#define LABELS_MAX 16   /* the kernel's 128 label bits: a larger area would only cost time to read */

/* The rules of one level, indexed by attribute type (O(1) on a path that
 * every flow of a dump takes); a type past max, or without a rule, is one
 * the parser skips. */
struct rule {
	int16_t size;              /* 0 for a type without a rule */
	const struct level *nest;  /* inside a nested attribute */
};
struct level {
	uint16_t max;
	const struct rule *rules;
	int strict;                /* a type past max is malformed, not skipped */
};

#define LEVEL(name, ...) \
	static const struct rule name##_rules[] = { __VA_ARGS__ }; \
	static const struct level name = { sizeof(name##_rules) / sizeof(name##_rules[0]) - 1, name##_rules, 0 }
/* The library's parser of an expectation's NAT part stores every type up to
 * CTA_MAX into an array of CTA_EXPECT_NAT_MAX + 1: a larger type would
 * write past it, on its stack. */
#define STRICT_LEVEL(name, ...) \
	static const struct rule name##_rules[] = { __VA_ARGS__ }; \
	static const struct level name = { sizeof(name##_rules) / sizeof(name##_rules[0]) - 1, name##_rules, 1 }

LEVEL(ip, [CTA_IP_V4_SRC] = { 4, NULL }, [CTA_IP_V4_DST] = { 4, NULL },
          [CTA_IP_V6_SRC] = { 16, NULL }, [CTA_IP_V6_DST] = { 16, NULL });
LEVEL(proto, [CTA_PROTO_NUM] = { 1, NULL }, [CTA_PROTO_SRC_PORT] = { 2, NULL },
             [CTA_PROTO_DST_PORT] = { 2, NULL }, [CTA_PROTO_ICMP_ID] = { 2, NULL },
             [CTA_PROTO_ICMP_TYPE] = { 1, NULL }, [CTA_PROTO_ICMP_CODE] = { 1, NULL },
             [CTA_PROTO_ICMPV6_ID] = { 2, NULL }, [CTA_PROTO_ICMPV6_TYPE] = { 1, NULL },
             [CTA_PROTO_ICMPV6_CODE] = { 1, NULL });
LEVEL(tuple, [CTA_TUPLE_IP] = { NESTED, &ip }, [CTA_TUPLE_PROTO] = { NESTED, &proto },
             [CTA_TUPLE_ZONE] = { 2, NULL });
LEVEL(tcp, [CTA_PROTOINFO_TCP_STATE] = { 1, NULL }, [CTA_PROTOINFO_TCP_WSCALE_ORIGINAL] = { 1, NULL },
           [CTA_PROTOINFO_TCP_WSCALE_REPLY] = { 1, NULL }, [CTA_PROTOINFO_TCP_FLAGS_ORIGINAL] = { 2, NULL },
           [CTA_PROTOINFO_TCP_FLAGS_REPLY] = { 2, NULL });
LEVEL(sctp, [CTA_PROTOINFO_SCTP_STATE] = { 1, NULL }, [CTA_PROTOINFO_SCTP_VTAG_ORIGINAL] = { 4, NULL },
            [CTA_PROTOINFO_SCTP_VTAG_REPLY] = { 4, NULL });
LEVEL(dccp, [CTA_PROTOINFO_DCCP_STATE] = { 1, NULL }, [CTA_PROTOINFO_DCCP_ROLE] = { 1, NULL },
            [CTA_PROTOINFO_DCCP_HANDSHAKE_SEQ] = { 8, NULL });
LEVEL(protoinfo, [CTA_PROTOINFO_TCP] = { NESTED, &tcp }, [CTA_PROTOINFO_SCTP] = { NESTED, &sctp },
                 [CTA_PROTOINFO_DCCP] = { NESTED, &dccp });
LEVEL(counters, [CTA_COUNTERS_PACKETS] = { 8, NULL }, [CTA_COUNTERS_BYTES] = { 8, NULL },
                [CTA_COUNTERS32_PACKETS] = { 4, NULL }, [CTA_COUNTERS32_BYTES] = { 4, NULL });
LEVEL(nat_seq, [CTA_SEQADJ_CORRECTION_POS] = { 4, NULL }, [CTA_SEQADJ_OFFSET_BEFORE] = { 4, NULL },
               [CTA_SEQADJ_OFFSET_AFTER] = { 4, NULL });
LEVEL(help, [CTA_HELP_NAME] = { STRING, NULL });
LEVEL(secctx, [CTA_SECCTX_NAME] = { STRING, NULL });
LEVEL(timestamp, [CTA_TIMESTAMP_START] = { 8, NULL }, [CTA_TIMESTAMP_STOP] = { 8, NULL });
LEVEL(synproxy, [CTA_SYNPROXY_ISN] = { 4, NULL }, [CTA_SYNPROXY_ITS] = { 4, NULL },
                [CTA_SYNPROXY_TSOFF] = { 4, NULL });
LEVEL(conntrack,
      [CTA_TUPLE_ORIG] = { NESTED, &tuple }, [CTA_TUPLE_REPLY] = { NESTED, &tuple },
      [CTA_TUPLE_MASTER] = { NESTED, &tuple }, [CTA_NAT_SEQ_ADJ_ORIG] = { NESTED, &nat_seq },
      [CTA_NAT_SEQ_ADJ_REPLY] = { NESTED, &nat_seq }, [CTA_PROTOINFO] = { NESTED, &protoinfo },
      [CTA_COUNTERS_ORIG] = { NESTED, &counters }, [CTA_COUNTERS_REPLY] = { NESTED, &counters },
      [CTA_HELP] = { NESTED, &help }, [CTA_SECCTX] = { NESTED, &secctx },
      [CTA_TIMESTAMP] = { NESTED, &timestamp }, [CTA_SYNPROXY] = { NESTED, &synproxy },
      [CTA_STATUS] = { 4, NULL }, [CTA_TIMEOUT] = { 4, NULL }, [CTA_MARK] = { 4, NULL },
      [CTA_SECMARK] = { 4, NULL }, [CTA_USE] = { 4, NULL }, [CTA_ID] = { 4, NULL }, [CTA_ZONE] = { 2, NULL },
      [CTA_LABELS] = { LABELS, NULL }, [CTA_TIMESTAMP_EVENT] = { 8, NULL });

STRICT_LEVEL(expect_nat, [CTA_EXPECT_NAT_DIR] = { 4, NULL }, [CTA_EXPECT_NAT_TUPLE] = { NESTED, &tuple });
LEVEL(expect,
      [CTA_EXPECT_MASTER] = { NESTED, &tuple }, [CTA_EXPECT_TUPLE] = { NESTED, &tuple },
      [CTA_EXPECT_MASK] = { NESTED, &tuple }, [CTA_EXPECT_TIMEOUT] = { 4, NULL }, [CTA_EXPECT_ID] = { 4, NULL },
      [CTA_EXPECT_HELP_NAME] = { STRING, NULL }, [CTA_EXPECT_ZONE] = { 2, NULL },
      [CTA_EXPECT_FLAGS] = { 4, NULL }, [CTA_EXPECT_CLASS] = { 4, NULL },
      [CTA_EXPECT_NAT] = { NESTED, &expect_nat }, [CTA_EXPECT_FN] = { EXPECTFN, NULL });
/* the library asserts (aborts) on an expect function's name longer than this */
#define EXPECTFN_MAX 32

/* Every attribute of a level lies within it and follows its rule; what is
 * left at the end must be padding, not a truncated attribute. The common
 * case, an attribute of fixed size, is tested first: every flow of a dump
 * comes through here. */
static int check_level(const char *at, int left, const struct level *level, int depth,
                       const struct nlattr **tb, unsigned int tb_max)
{
	const struct rule *rules = level->rules;
	unsigned int max = level->max;

	while (left >= (int)sizeof(struct nlattr)) {
		const struct nlattr *attr = (const struct nlattr *)at;
		unsigned int type = attr->nla_type & NLA_TYPE_MASK, alen = attr->nla_len;
		int len = (int)alen - (int)MNL_ATTR_HDRLEN;

		if (alen < sizeof(struct nlattr) || (int)alen > left)
			return -1;
		if (type > max && level->strict)
			return -1;
		if (tb != NULL && type <= tb_max)
			tb[type] = attr;
		if (type <= max) {
			const struct rule *r = &rules[type];
			if (r->size > 0) {
				if (len != r->size)
					return -1;
			} else if (r->size == NESTED) {
				if (len != 0 && (len < (int)MNL_ATTR_HDRLEN || depth >= 4 ||
				                 check_level(at + MNL_ATTR_HDRLEN, len, r->nest, depth + 1, NULL, 0) < 0))
					return -1;
			} else if (r->size == STRING) {
				/* read up to its NUL: it must have one */
				if (len == 0 || memchr(at + MNL_ATTR_HDRLEN, '\0', (size_t)len) == NULL)
					return -1;
			} else if (r->size == LABELS && len > LABELS_MAX) {
				return -1;
			} else if (r->size == EXPECTFN && (len == 0 || len > EXPECTFN_MAX ||
			                                   memchr(at + MNL_ATTR_HDRLEN, '\0', (size_t)len) == NULL)) {
				return -1;
			}
		}
		alen = MNL_ALIGN(alen);
		left -= (int)alen;
		at += alen;
	}
	return 0;
}

static int validate_as(const struct nlmsghdr *nlh, const struct level *level, const struct nlattr **tb,
                       unsigned int tb_max)
{
	size_t head = MNL_NLMSG_HDRLEN + MNL_ALIGN(sizeof(struct nfgenmsg));

	if (nlh->nlmsg_len < head)
		return -1;
	return check_level((const char *)nlh + head, (int)(nlh->nlmsg_len - head), level, 0, tb, tb_max);
}

int msg_validate(const struct nlmsghdr *nlh)
{
	return validate_as(nlh, &conntrack, NULL, 0);
}

/* The attributes of one level by type, the last of a type winning and types
 * past max skipped: what mnl_attr_parse_nested does with the callbacks of
 * libnetfilter_conntrack. For a level that was validated: every attribute
 * lies within it and those with a rule have their exact sizes. */
void msg_attrs_of(const void *payload, int len, const struct nlattr **tb, int max)
{
	const char *at = payload;

	memset(tb, 0, sizeof(*tb) * (size_t)(max + 1));
	while (len >= (int)sizeof(struct nlattr)) {
		const struct nlattr *attr = (const struct nlattr *)at;
		int type = attr->nla_type & NLA_TYPE_MASK;

		if (attr->nla_len < sizeof(struct nlattr) || attr->nla_len > len)
			return;
		if (type <= max)
			tb[type] = attr;
		len -= (int)MNL_ALIGN(attr->nla_len);
		at += MNL_ALIGN(attr->nla_len);
	}
}

/* Every message from the kernel goes through here: its attributes are
 * checked before the library or format.c reads them. 0, or -1. */
int msg_check(const struct nlmsghdr *nlh)
{
	const struct nfgenmsg *nfh = mnl_nlmsg_get_payload(nlh);
	size_t head = MNL_NLMSG_HDRLEN + MNL_ALIGN(sizeof(struct nfgenmsg));

	/* conntrack tracks IPv4 and IPv6; the library cannot print another family */
	if (nlh->nlmsg_len < head || (nfh->nfgen_family != AF_INET && nfh->nfgen_family != AF_INET6) ||
	    msg_validate(nlh) < 0)
		return -1;
	return 0;
}

/* A message of a family conntrack tracks, checked against level and indexed
 * into tb (tb_max + 1 slots): 0, or -1. */
static int check_family_index(const struct nlmsghdr *nlh, const struct level *level, const struct nlattr **tb,
                              int tb_max)
{
	const struct nfgenmsg *nfh = mnl_nlmsg_get_payload(nlh);
	size_t head = MNL_NLMSG_HDRLEN + MNL_ALIGN(sizeof(struct nfgenmsg));

	memset(tb, 0, sizeof(*tb) * (size_t)(tb_max + 1));
	if (nlh->nlmsg_len < head || (nfh->nfgen_family != AF_INET && nfh->nfgen_family != AF_INET6) ||
	    validate_as(nlh, level, tb, (unsigned int)tb_max) < 0)
		return -1;
	return 0;
}

/* msg_check that also indexes the message's attributes by type into tb
 * (tb_max + 1 slots), as msg_attrs_of would: one walk of the message for
 * both. 0, or -1. */
int msg_check_index(const struct nlmsghdr *nlh, const struct nlattr **tb, int tb_max)
{
	return check_family_index(nlh, &conntrack, tb, tb_max);
}

/* The top level of a flow's message indexed as msg_check_index does, its
 * attributes' framing checked but not their contents: for a flow that may
 * never be read (a counting loop), checked whole when it is (msg_check). */
int msg_index_top(const struct nlmsghdr *nlh, const struct nlattr **tb, int tb_max)
{
	static const struct rule none[1];
	static const struct level top = { 0, none, 0 };

	return check_family_index(nlh, &top, tb, tb_max);
}

/* The same for a message of the expectation table (the library's parser of
 * expectations reads tuples with the flows' code, and exits alike). */
int msg_check_expect(const struct nlmsghdr *nlh)
{
	const struct nfgenmsg *nfh = mnl_nlmsg_get_payload(nlh);
	size_t head = MNL_NLMSG_HDRLEN + MNL_ALIGN(sizeof(struct nfgenmsg));

	if (nlh->nlmsg_len < head || (nfh->nfgen_family != AF_INET && nfh->nfgen_family != AF_INET6) ||
	    validate_as(nlh, &expect, NULL, 0) < 0)
		return -1;
	return 0;
}

/* The kernel's time of an event (CTA_TIMESTAMP_EVENT, Linux 6.12 and later),
 * in seconds since the epoch, of a checked message: 1, or 0 if it has none. */
int msg_event_time(const struct nlmsghdr *nlh, double *t)
{
	const struct nlattr *tb[CTA_TIMESTAMP_EVENT + 1];
	size_t head = MNL_ALIGN(sizeof(struct nfgenmsg));

	msg_attrs_of((const char *)mnl_nlmsg_get_payload(nlh) + head, (int)(mnl_nlmsg_get_payload_len(nlh) - head),
	             tb, CTA_TIMESTAMP_EVENT);
	if (tb[CTA_TIMESTAMP_EVENT] == NULL || MSG_PAYLOAD_LEN(tb[CTA_TIMESTAMP_EVENT]) != 8)
		return 0;
	*t = (double)msg_be64(tb[CTA_TIMESTAMP_EVENT]) / 1e9;
	return 1;
}
