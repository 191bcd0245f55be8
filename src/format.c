/*
 * format.c: the line conntrack -L prints for a flow, written straight from its
 * validated ctnetlink message, without printf: byte for byte what
 * nfct_snprintf prints after nfct_payload_parse, for the common flows. What it
 * does not cover (XML, labels, helpers, security contexts, DCCP, kernel
 * timestamps, states it has no name for) it declines, and the caller falls
 * back to the library. Also addresses as text, as inet_ntop writes them. No Lua.
 */
#include <string.h>
#include <time.h>
#include <netinet/in.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>
#include <linux/netfilter/nf_conntrack_common.h>

#include "lct.h"

/* ---- numbers and addresses ---- */

static char *put_u64(char *p, uint64_t v)
{
	char tmp[20];
	int n = 0;

	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	while (n)
		*p++ = tmp[--n];
	return p;
}

static char *put_u32(char *p, uint32_t v)
{
	return put_u64(p, v);
}

static char *put_hex(char *p, unsigned int v)
{
	static const char digits[] = "0123456789abcdef";
	char tmp[8];
	int n = 0;

	do {
		tmp[n++] = digits[v & 15];
		v >>= 4;
	} while (v);
	while (n)
		*p++ = tmp[--n];
	return p;
}

static char *put_str(char *p, const char *s, size_t len)
{
	memcpy(p, s, len);
	return p + len;
}
#define PUT(p, lit) put_str(p, lit, sizeof(lit) - 1)

static char *put_ipv4(char *p, const uint8_t *a)
{
	int i;

	for (i = 0; i < 4; i++) {
		if (i)
			*p++ = '.';
		p = put_u32(p, a[i]);
	}
	return p;
}

/* RFC 5952 as glibc's inet_ntop does it: the first longest run of two or more
 * zero words becomes "::"; an IPv4-compatible (::a.b.c.d) or IPv4-mapped
 * (::ffff:a.b.c.d) address ends in dotted decimal. */
static char *put_ipv6(char *p, const uint8_t *a)
{
	unsigned int w[8];
	int i, best = -1, best_len = 0, cur = -1, cur_len = 0;

	for (i = 0; i < 8; i++) {
		w[i] = (unsigned int)a[2 * i] << 8 | a[2 * i + 1];
		if (w[i] == 0) {
			if (cur < 0)
				cur = i, cur_len = 0;
			if (++cur_len > best_len)
				best = cur, best_len = cur_len;
		} else {
			cur = -1;
		}
	}
	if (best_len < 2)
		best = -1;
	for (i = 0; i < 8; i++) {
		if (best >= 0 && i >= best && i < best + best_len) {
			if (i == best)
				*p++ = ':';
			continue;
		}
		if (i)
			*p++ = ':';
		if (i == 6 && best == 0 && (best_len == 6 || (best_len == 5 && w[5] == 0xffff)))
			return put_ipv4(p, a + 12);
		p = put_hex(p, w[i]);
	}
	if (best >= 0 && best + best_len == 8)
		*p++ = ':';
	return p;
}

char *msg_addr_text(char *out, int family, const void *addr)
{
	char *end = family == AF_INET ? put_ipv4(out, addr) : put_ipv6(out, addr);

	*end = '\0';
	return end;
}

/* ---- the message (validated), read as nfct_payload_parse reads it ---- */

/* The library's __nfct_tuple as the line uses it: the address unions and the
 * layer-4 unions as bytes, written in the order its parser writes them. */
struct tuple {
	uint8_t src[16], dst[16];
	uint8_t l4src[2], l4dst[2];   /* port / ICMP id; port / ICMP type, code */
	uint8_t proto;
	int has_proto, has_zone;
	uint16_t zone;
};

static void read_tuple(const struct nlattr *nest, struct tuple *t)
{
	const struct nlattr *tb[CTA_TUPLE_MAX + 1], *ip[CTA_IP_MAX + 1], *pr[CTA_PROTO_MAX + 1];

	memset(t, 0, sizeof(*t));
	msg_attrs_of(MSG_PAYLOAD(nest), MSG_PAYLOAD_LEN(nest), tb, CTA_TUPLE_MAX);
	if (tb[CTA_TUPLE_IP]) {
		msg_attrs_of(MSG_PAYLOAD(tb[CTA_TUPLE_IP]), MSG_PAYLOAD_LEN(tb[CTA_TUPLE_IP]), ip, CTA_IP_MAX);
		if (ip[CTA_IP_V4_SRC]) memcpy(t->src, MSG_PAYLOAD(ip[CTA_IP_V4_SRC]), 4);
		if (ip[CTA_IP_V4_DST]) memcpy(t->dst, MSG_PAYLOAD(ip[CTA_IP_V4_DST]), 4);
		if (ip[CTA_IP_V6_SRC]) memcpy(t->src, MSG_PAYLOAD(ip[CTA_IP_V6_SRC]), 16);
		if (ip[CTA_IP_V6_DST]) memcpy(t->dst, MSG_PAYLOAD(ip[CTA_IP_V6_DST]), 16);
	}
	if (tb[CTA_TUPLE_PROTO]) {
		msg_attrs_of(MSG_PAYLOAD(tb[CTA_TUPLE_PROTO]), MSG_PAYLOAD_LEN(tb[CTA_TUPLE_PROTO]), pr, CTA_PROTO_MAX);
		if (pr[CTA_PROTO_NUM])        t->proto = MSG_PAYLOAD(pr[CTA_PROTO_NUM])[0], t->has_proto = 1;
		if (pr[CTA_PROTO_SRC_PORT])   memcpy(t->l4src, MSG_PAYLOAD(pr[CTA_PROTO_SRC_PORT]), 2);
		if (pr[CTA_PROTO_DST_PORT])   memcpy(t->l4dst, MSG_PAYLOAD(pr[CTA_PROTO_DST_PORT]), 2);
		if (pr[CTA_PROTO_ICMP_TYPE])  t->l4dst[0] = MSG_PAYLOAD(pr[CTA_PROTO_ICMP_TYPE])[0];
		if (pr[CTA_PROTO_ICMP_CODE])  t->l4dst[1] = MSG_PAYLOAD(pr[CTA_PROTO_ICMP_CODE])[0];
		if (pr[CTA_PROTO_ICMP_ID])    memcpy(t->l4src, MSG_PAYLOAD(pr[CTA_PROTO_ICMP_ID]), 2);
		if (pr[CTA_PROTO_ICMPV6_TYPE]) t->l4dst[0] = MSG_PAYLOAD(pr[CTA_PROTO_ICMPV6_TYPE])[0];
		if (pr[CTA_PROTO_ICMPV6_CODE]) t->l4dst[1] = MSG_PAYLOAD(pr[CTA_PROTO_ICMPV6_CODE])[0];
		if (pr[CTA_PROTO_ICMPV6_ID])  memcpy(t->l4src, MSG_PAYLOAD(pr[CTA_PROTO_ICMPV6_ID]), 2);
	}
	if (tb[CTA_TUPLE_ZONE]) {
		t->has_zone = 1;
		t->zone = (uint16_t)(MSG_PAYLOAD(tb[CTA_TUPLE_ZONE])[0] << 8 | MSG_PAYLOAD(tb[CTA_TUPLE_ZONE])[1]);
	}
}

struct counters {
	int has_packets, has_bytes;
	uint64_t packets, bytes;
};

static void read_counters(const struct nlattr *nest, struct counters *c)
{
	const struct nlattr *tb[CTA_COUNTERS_MAX + 1];

	memset(c, 0, sizeof(*c));
	if (nest == NULL)
		return;
	msg_attrs_of(MSG_PAYLOAD(nest), MSG_PAYLOAD_LEN(nest), tb, CTA_COUNTERS_MAX);
	c->has_packets = tb[CTA_COUNTERS_PACKETS] || tb[CTA_COUNTERS32_PACKETS];
	c->has_bytes = tb[CTA_COUNTERS_BYTES] || tb[CTA_COUNTERS32_BYTES];
	if (tb[CTA_COUNTERS32_PACKETS]) c->packets = msg_be32(tb[CTA_COUNTERS32_PACKETS]);
	if (tb[CTA_COUNTERS_PACKETS])   c->packets = msg_be64(tb[CTA_COUNTERS_PACKETS]);
	if (tb[CTA_COUNTERS32_BYTES])   c->bytes = msg_be32(tb[CTA_COUNTERS32_BYTES]);
	if (tb[CTA_COUNTERS_BYTES])     c->bytes = msg_be64(tb[CTA_COUNTERS_BYTES]);
}

/* ---- the line ---- */

/* "%-8s %u " of the protocol's name and number */
static char *put_proto(char *p, unsigned int num, const char *name)
{
	size_t len = strlen(name);

	p = put_str(p, name, len);
	while (len++ < 8)
		*p++ = ' ';
	*p++ = ' ';
	p = put_u32(p, num);
	*p++ = ' ';
	return p;
}

/* conntrack's name of a protocol: "unknown" where it has none */
static const char *l4_name(uint8_t proto)
{
	const char *name = msg_proto_name(proto);

	return name ? name : "unknown";
}

static char *put_tuple(char *p, const struct tuple *t, uint8_t family, const char *zone_tag, size_t tag_len)
{
	p = PUT(p, "src=");
	p = family == AF_INET ? put_ipv4(p, t->src) : put_ipv6(p, t->src);
	p = PUT(p, " dst=");
	p = family == AF_INET ? put_ipv4(p, t->dst) : put_ipv6(p, t->dst);
	*p++ = ' ';
	switch (t->proto) {
	case IPPROTO_TCP: case IPPROTO_UDP: case IPPROTO_UDPLITE: case IPPROTO_SCTP: case IPPROTO_DCCP:
		p = PUT(p, "sport=");
		p = put_u32(p, (uint32_t)t->l4src[0] << 8 | t->l4src[1]);
		p = PUT(p, " dport=");
		p = put_u32(p, (uint32_t)t->l4dst[0] << 8 | t->l4dst[1]);
		*p++ = ' ';
		break;
	case IPPROTO_GRE:
		p = PUT(p, "srckey=0x");
		p = put_hex(p, (unsigned int)t->l4src[0] << 8 | t->l4src[1]);
		p = PUT(p, " dstkey=0x");
		p = put_hex(p, (unsigned int)t->l4dst[0] << 8 | t->l4dst[1]);
		*p++ = ' ';
		break;
	case IPPROTO_ICMP: case IPPROTO_ICMPV6:
		p = PUT(p, "type=");
		p = put_u32(p, t->l4dst[0]);
		p = PUT(p, " code=");
		p = put_u32(p, t->l4dst[1]);
		p = PUT(p, " id=");
		p = put_u32(p, (uint32_t)t->l4src[0] << 8 | t->l4src[1]);
		*p++ = ' ';
		break;
	}
	if (t->has_zone) {
		p = put_str(p, zone_tag, tag_len);
		p = put_u32(p, t->zone);
		*p++ = ' ';
	}
	return p;
}

static char *put_counters(char *p, const struct counters *c)
{
	if (!c->has_packets || !c->has_bytes)
		return p;
	p = PUT(p, "packets=");
	p = put_u64(p, c->packets);
	p = PUT(p, " bytes=");
	p = put_u64(p, c->bytes);
	*p++ = ' ';
	return p;
}

/* The state of a protoinfo nest (TCP or SCTP), or -1 if it has none. */
static int state_of(const struct nlattr *nest)
{
	const struct nlattr *tb[CTA_PROTOINFO_TCP_MAX + 1];

	msg_attrs_of(MSG_PAYLOAD(nest), MSG_PAYLOAD_LEN(nest), tb, CTA_PROTOINFO_TCP_MAX);
	return tb[CTA_PROTOINFO_TCP_STATE] ? MSG_PAYLOAD(tb[CTA_PROTOINFO_TCP_STATE])[0] : -1;
}

/* Everything the line shows, read from the message once. */
struct line {
	const struct nlattr *tb[CTA_LABELS + 1];
	uint8_t family;
	struct tuple orig, reply;
	struct counters corig, creply;
	const char *state;              /* the TCP or SCTP state's name, or NULL */
	const struct nlattr *start, *stop;   /* timestamps */
};

/* The name of the state in a protoinfo nest as the library prints it: 0
 * without one, -1 for a state it cannot print (or a union it mixes up). */
static int read_state(const struct nlattr *nest, struct line *l)
{
	const struct nlattr *pi[CTA_PROTOINFO_MAX + 1];
	static const uint8_t protos[2] = { IPPROTO_TCP, IPPROTO_SCTP };
	int i, state;

	msg_attrs_of(MSG_PAYLOAD(nest), MSG_PAYLOAD_LEN(nest), pi, CTA_PROTOINFO_MAX);
	/* the library keeps the states of all three in one union */
	if (pi[CTA_PROTOINFO_DCCP] || (pi[CTA_PROTOINFO_TCP] && pi[CTA_PROTOINFO_SCTP]))
		return -1;
	for (i = 0; i < 2; i++) {
		const struct nlattr *info = pi[i == 0 ? CTA_PROTOINFO_TCP : CTA_PROTOINFO_SCTP];
		if (info == NULL || (state = state_of(info)) < 0)
			continue;
		if ((unsigned)state >= msg_states_of(protos[i])->printed)
			return -1;
		l->state = msg_state_name(protos[i], (unsigned)state);
	}
	return 0;
}

/* The parts of a line, or -1 where the line is the library's to write. */
static int read_line(const struct nlmsghdr *nlh, unsigned int flags, int labels, struct line *l)
{
	const struct nfgenmsg *nfh = mnl_nlmsg_get_payload(nlh);
	size_t head = MNL_NLMSG_HDRLEN + MNL_ALIGN(sizeof(struct nfgenmsg));
	const struct nlattr *const *tb = l->tb;

	l->family = nfh->nfgen_family;
	l->state = NULL;
	l->start = l->stop = NULL;
	if ((flags & ~(unsigned)(NFCT_OF_SHOW_LAYER3 | NFCT_OF_ID | NFCT_OF_TIMESTAMP)) ||
	    (l->family != AF_INET && l->family != AF_INET6) || nlh->nlmsg_len < head)
		return -1;
	msg_attrs_of((const char *)nlh + head, (int)(nlh->nlmsg_len - head), l->tb, CTA_LABELS);
	if (!tb[CTA_TUPLE_ORIG] || !tb[CTA_TUPLE_REPLY] || tb[CTA_HELP] || tb[CTA_SECCTX] ||
	    (labels && tb[CTA_LABELS] && MSG_PAYLOAD_LEN(tb[CTA_LABELS]) > 0))
		return -1;
	if (tb[CTA_PROTOINFO] && read_state(tb[CTA_PROTOINFO], l) < 0)
		return -1;
	if (tb[CTA_TIMESTAMP]) {
		const struct nlattr *ts[CTA_TIMESTAMP_MAX + 1];
		msg_attrs_of(MSG_PAYLOAD(tb[CTA_TIMESTAMP]), MSG_PAYLOAD_LEN(tb[CTA_TIMESTAMP]), ts, CTA_TIMESTAMP_MAX);
		l->start = ts[CTA_TIMESTAMP_START];
		l->stop = ts[CTA_TIMESTAMP_STOP];
		if ((flags & NFCT_OF_TIMESTAMP) && (l->start || l->stop))
			return -1;
	}
	read_tuple(tb[CTA_TUPLE_ORIG], &l->orig);
	read_tuple(tb[CTA_TUPLE_REPLY], &l->reply);
	/* the library prints no line without the protocol */
	if (!l->orig.has_proto)
		return -1;
	read_counters(tb[CTA_COUNTERS_ORIG], &l->corig);
	read_counters(tb[CTA_COUNTERS_REPLY], &l->creply);
	return 0;
}

/* "name=value " of a 32-bit attribute, if present */
static char *put_named_u32(char *p, const char *name, size_t len, const struct nlattr *attr)
{
	if (attr == NULL)
		return p;
	p = put_str(p, name, len);
	p = put_u32(p, msg_be32(attr));
	*p++ = ' ';
	return p;
}
#define PUT_NAMED_U32(p, lit, attr) put_named_u32(p, lit, sizeof(lit) - 1, attr)

/* The flags after the reply tuple, of the status word. */
static char *put_status_flags(char *p, uint32_t status)
{
	if (status & IPS_HW_OFFLOAD)     p = PUT(p, "[HW_OFFLOAD] ");
	else if (status & IPS_OFFLOAD)   p = PUT(p, "[OFFLOAD] ");
	else if (status & IPS_ASSURED)   p = PUT(p, "[ASSURED] ");
	return p;
}

/* "delta-time=S " as the library: a flow not yet stopped is measured against now */
static char *put_delta_time(char *p, const struct line *l)
{
	uint64_t stop = l->stop ? msg_be64(l->stop) : 0;
	time_t end = stop == 0 ? time(NULL) : (time_t)(stop / 1000000000u);
	time_t delta = end - (time_t)(msg_be64(l->start) / 1000000000u);

	p = PUT(p, "delta-time=");
	p = put_u64(p, (uint64_t)(long long)delta);
	*p++ = ' ';
	return p;
}

static char *write_line(char *p, const struct line *l, unsigned int ptype, unsigned int flags)
{
	const struct nlattr *const *tb = l->tb;
	uint32_t status = tb[CTA_STATUS] ? msg_be32(tb[CTA_STATUS]) : 0;

	switch (ptype) {
	case NFCT_T_NEW:     p = PUT(p, "    [NEW] "); break;
	case NFCT_T_UPDATE:  p = PUT(p, " [UPDATE] "); break;
	case NFCT_T_DESTROY: p = PUT(p, "[DESTROY] "); break;
	}
	if (flags & NFCT_OF_SHOW_LAYER3)
		p = put_proto(p, l->family, l->family == AF_INET ? "ipv4" : "ipv6");
	p = put_proto(p, l->orig.proto, l4_name(l->orig.proto));
	if (tb[CTA_TIMEOUT]) {
		p = put_u32(p, msg_be32(tb[CTA_TIMEOUT]));
		*p++ = ' ';
	}
	if (l->state) {
		p = put_str(p, l->state, strlen(l->state));
		*p++ = ' ';
	}
	p = put_tuple(p, &l->orig, l->family, "zone-orig=", 10);
	p = put_counters(p, &l->corig);
	if (tb[CTA_STATUS] && !(status & IPS_SEEN_REPLY))
		p = PUT(p, "[UNREPLIED] ");
	p = put_tuple(p, &l->reply, l->family, "zone-reply=", 11);
	p = put_counters(p, &l->creply);
	p = put_status_flags(p, status);
	p = PUT_NAMED_U32(p, "mark=", tb[CTA_MARK]);
	p = PUT_NAMED_U32(p, "secmark=", tb[CTA_SECMARK]);
	if (tb[CTA_ZONE]) {
		p = PUT(p, "zone=");
		p = put_u32(p, (uint32_t)MSG_PAYLOAD(tb[CTA_ZONE])[0] << 8 | MSG_PAYLOAD(tb[CTA_ZONE])[1]);
		*p++ = ' ';
	}
	if (l->start)
		p = put_delta_time(p, l);
	p = PUT_NAMED_U32(p, "use=", tb[CTA_USE]);
	if (flags & NFCT_OF_ID)
		p = PUT_NAMED_U32(p, "id=", tb[CTA_ID]);
	return p;
}

/* The line of the flow in nlh (a validated IPCTNL_MSG_CT_NEW or _DELETE
 * message) into buf (MSG_LINE_MAX bytes): its length, or -1 when the line is
 * one this file leaves to nfct_snprintf. ptype and flags as nfct_snprintf
 * takes them (NFCT_O_DEFAULT); labels: labels are shown. */
int msg_format_line(char *buf, const struct nlmsghdr *nlh, unsigned int ptype, unsigned int flags, int labels)
{
	struct line l;
	char *p;

	if (read_line(nlh, flags, labels, &l) < 0)
		return -1;
	p = write_line(buf, &l, ptype, flags);
	/* the library deletes the last blank */
	*--p = '\0';
	return (int)(p - buf);
}
