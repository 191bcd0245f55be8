/*
 * match.c: a compiled filter (filter.c) against a parsed flow, or against
 * the kernel's message itself when the filter needs only its addresses,
 * family and mark (no flow object is made then). No Lua: dumps, sweeps and
 * events call it on every flow, lists of values and prefixes by binary search.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>

#include "lct.h"

const uint8_t lct_state_protos[3] = { IPPROTO_TCP, IPPROTO_SCTP, IPPROTO_DCCP };

static int values_has(const struct values *vs, uint64_t v)
{
	uint32_t low = 0, high = vs->nexact, i;

	while (low < high) {
		uint32_t mid = low + (high - low) / 2;
		if (vs->items[mid].value == v)
			return 1;
		if (vs->items[mid].value < v)
			low = mid + 1;
		else
			high = mid;
	}
	for (i = vs->nexact; i < vs->n; i++)
		if ((v & vs->items[i].mask) == vs->items[i].value)
			return 1;
	return 0;
}

struct subject {
	const struct nf_conntrack *ct;     /* a parsed flow, or NULL: */
	const struct nlattr *tb[CTA_MARK + 1];   /* the message's attributes */
	uint8_t family;
};

/* An address field of a validated message, read as the parsed flow would
 * give it (lct_field_read_addr): the family is the message's if it has an
 * original tuple; an IPv6 attribute overwrites an IPv4 one in the library's
 * union. */
static int message_addr(const struct nlattr *const *tb, uint8_t family, const struct field *fd, struct addr *a)
{
	const struct nlattr *tuple = tb[fd->attr == ATTR_ORIG_IPV4_SRC || fd->attr == ATTR_ORIG_IPV4_DST ?
	                                CTA_TUPLE_ORIG : CTA_TUPLE_REPLY];
	int src = fd->attr == ATTR_ORIG_IPV4_SRC || fd->attr == ATTR_REPL_IPV4_SRC;
	const struct nlattr *t[CTA_TUPLE_MAX + 1], *ip[CTA_IP_MAX + 1], *v4, *v6;

	if (tb[CTA_TUPLE_ORIG] == NULL || tuple == NULL)
		return 0;
	msg_attrs_of(MSG_PAYLOAD(tuple), MSG_PAYLOAD_LEN(tuple), t, CTA_TUPLE_MAX);
	if (t[CTA_TUPLE_IP] == NULL)
		return 0;
	msg_attrs_of(MSG_PAYLOAD(t[CTA_TUPLE_IP]), MSG_PAYLOAD_LEN(t[CTA_TUPLE_IP]), ip, CTA_IP_MAX);
	v4 = ip[src ? CTA_IP_V4_SRC : CTA_IP_V4_DST];
	v6 = ip[src ? CTA_IP_V6_SRC : CTA_IP_V6_DST];
	if ((family == AF_INET ? v4 : v6) == NULL)
		return 0;
	memset(a, 0, sizeof(*a));
	a->family = family;
	a->plen = family == AF_INET ? 32 : 128;
	memcpy(a->a, MSG_PAYLOAD(v6 ? v6 : v4), family == AF_INET ? 4 : 16);
	return 1;
}

static int subject_addr(const struct subject *s, int field, struct addr *a)
{
	if (s->ct != NULL)
		return lct_field_read_addr(s->ct, field, a);
	return message_addr(s->tb, s->family, &lct_fields[field], a);
}

/* A message gives only its family and mark (lct_filter_on_message sees to it). */
static int subject_u64(const struct subject *s, int field, uint64_t *v)
{
	if (s->ct != NULL)
		return lct_field_read_u64(s->ct, field, v);
	if (field == FIELD_MARK) {
		if (s->tb[CTA_MARK] == NULL)
			return 0;
		*v = msg_be32(s->tb[CTA_MARK]);
		return 1;
	}
	if (field != FIELD_FAMILY || s->tb[CTA_TUPLE_ORIG] == NULL)
		return 0;
	*v = s->family;
	return 1;
}

static int addr_in(const struct term *t, const struct subject *s, int field)
{
	struct addr a;

	return subject_addr(s, field, &a) && lct_prefixes_has(t->prefixes, &a);
}

/* The term's value matches the flow's (before its negation). */
static int value_matches(const struct term *t, const struct subject *s)
{
	const struct field *fd;
	uint64_t v;
	int i;

	if (t->field == FIELD_ADDR)
		return addr_in(t, s, FIELD_ORIG_SRC) || addr_in(t, s, FIELD_ORIG_DST) ||
		       addr_in(t, s, FIELD_REPLY_SRC) || addr_in(t, s, FIELD_REPLY_DST);
	fd = &lct_fields[t->field];
	switch (fd->kind) {
	case K_ADDR:
		return addr_in(t, s, t->field);
	case K_STATE:
		if (!subject_u64(s, t->field, &v))
			return 0;
		for (i = 0; i < 3; i++)
			if (lct_state_protos[i] == lct_flow_proto(s->ct))
				return v < 32 && (t->state_bits[i] >> v) & 1;
		return 0;
	case K_LABELS: {
		const struct nfct_bitmask *b = nfct_get_attr(s->ct, ATTR_CONNLABELS);
		for (i = 0; i < 128; i++)
			if ((t->addr.a[i / 32] >> (i % 32)) & 1)
				if (b == NULL || i > (int)nfct_bitmask_maxbit(b) || !nfct_bitmask_test_bit(b, i))
					return 0;
		return 1;
	}
	case K_STRING:
		return nfct_attr_is_set(s->ct, fd->attr) && strcmp(nfct_get_attr(s->ct, fd->attr), t->str) == 0;
	default:
		if (!subject_u64(s, t->field, &v))
			return 0;
		return t->values ? values_has(t->values, v) : (v & t->mask) == t->value;
	}
}

static int matches(const struct filter *f, const struct subject *s)
{
	int i;

	for (i = 0; i < f->nterms; i++)
		if (value_matches(&f->terms[i], s) == f->terms[i].negate)
			return 0;
	if (f->nany == 0)
		return 1;
	for (i = 0; i < f->nany; i++)
		if (matches(f->any[i], s))
			return 1;
	return 0;
}

int lct_filter_match(const struct filter *f, const struct nf_conntrack *ct)
{
	struct subject s;

	s.ct = ct;
	return matches(f, &s);
}

/* Filters of addresses, the family and the mark alone, in any combination,
 * are matched on the message itself, without parsing it (a delete by prefix
 * or mark, a listing by address). */
int lct_filter_on_message(const struct filter *f)
{
	int i;

	for (i = 0; i < f->nterms; i++)
		if (f->terms[i].field != FIELD_ADDR && !(lct_fields[f->terms[i].field].caps & CAP_MESSAGE))
			return 0;
	for (i = 0; i < f->nany; i++)
		if (!lct_filter_on_message(f->any[i]))
			return 0;
	return 1;
}

/* lct_filter_match for a filter lct_filter_on_message accepts, on a message
 * checked by msg_check. */
int lct_filter_match_message(const struct filter *f, const struct nlmsghdr *nlh)
{
	size_t head = MNL_NLMSG_HDRLEN + MNL_ALIGN(sizeof(struct nfgenmsg));
	struct subject s;

	s.ct = NULL;
	s.family = ((const struct nfgenmsg *)mnl_nlmsg_get_payload(nlh))->nfgen_family;
	msg_attrs_of((const char *)nlh + head, (int)(nlh->nlmsg_len - head), s.tb, CTA_MARK);
	return matches(f, &s);
}

