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

char *lct_addr_text(char *out, int family, const void *addr)
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
	lct_attrs_of(LCT_PAYLOAD(nest), LCT_PAYLOAD_LEN(nest), tb, CTA_TUPLE_MAX);
	if (tb[CTA_TUPLE_IP]) {
		lct_attrs_of(LCT_PAYLOAD(tb[CTA_TUPLE_IP]), LCT_PAYLOAD_LEN(tb[CTA_TUPLE_IP]), ip, CTA_IP_MAX);
		if (ip[CTA_IP_V4_SRC]) memcpy(t->src, LCT_PAYLOAD(ip[CTA_IP_V4_SRC]), 4);
		if (ip[CTA_IP_V4_DST]) memcpy(t->dst, LCT_PAYLOAD(ip[CTA_IP_V4_DST]), 4);
		if (ip[CTA_IP_V6_SRC]) memcpy(t->src, LCT_PAYLOAD(ip[CTA_IP_V6_SRC]), 16);
		if (ip[CTA_IP_V6_DST]) memcpy(t->dst, LCT_PAYLOAD(ip[CTA_IP_V6_DST]), 16);
	}
	if (tb[CTA_TUPLE_PROTO]) {
		lct_attrs_of(LCT_PAYLOAD(tb[CTA_TUPLE_PROTO]), LCT_PAYLOAD_LEN(tb[CTA_TUPLE_PROTO]), pr, CTA_PROTO_MAX);
		if (pr[CTA_PROTO_NUM])        t->proto = LCT_PAYLOAD(pr[CTA_PROTO_NUM])[0], t->has_proto = 1;
		if (pr[CTA_PROTO_SRC_PORT])   memcpy(t->l4src, LCT_PAYLOAD(pr[CTA_PROTO_SRC_PORT]), 2);
		if (pr[CTA_PROTO_DST_PORT])   memcpy(t->l4dst, LCT_PAYLOAD(pr[CTA_PROTO_DST_PORT]), 2);
		if (pr[CTA_PROTO_ICMP_TYPE])  t->l4dst[0] = LCT_PAYLOAD(pr[CTA_PROTO_ICMP_TYPE])[0];
		if (pr[CTA_PROTO_ICMP_CODE])  t->l4dst[1] = LCT_PAYLOAD(pr[CTA_PROTO_ICMP_CODE])[0];
		if (pr[CTA_PROTO_ICMP_ID])    memcpy(t->l4src, LCT_PAYLOAD(pr[CTA_PROTO_ICMP_ID]), 2);
		if (pr[CTA_PROTO_ICMPV6_TYPE]) t->l4dst[0] = LCT_PAYLOAD(pr[CTA_PROTO_ICMPV6_TYPE])[0];
		if (pr[CTA_PROTO_ICMPV6_CODE]) t->l4dst[1] = LCT_PAYLOAD(pr[CTA_PROTO_ICMPV6_CODE])[0];
		if (pr[CTA_PROTO_ICMPV6_ID])  memcpy(t->l4src, LCT_PAYLOAD(pr[CTA_PROTO_ICMPV6_ID]), 2);
	}
	if (tb[CTA_TUPLE_ZONE]) {
		t->has_zone = 1;
		t->zone = (uint16_t)(LCT_PAYLOAD(tb[CTA_TUPLE_ZONE])[0] << 8 | LCT_PAYLOAD(tb[CTA_TUPLE_ZONE])[1]);
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
	lct_attrs_of(LCT_PAYLOAD(nest), LCT_PAYLOAD_LEN(nest), tb, CTA_COUNTERS_MAX);
	c->has_packets = tb[CTA_COUNTERS_PACKETS] || tb[CTA_COUNTERS32_PACKETS];
	c->has_bytes = tb[CTA_COUNTERS_BYTES] || tb[CTA_COUNTERS32_BYTES];
	if (tb[CTA_COUNTERS32_PACKETS]) c->packets = lct_be32(tb[CTA_COUNTERS32_PACKETS]);
	if (tb[CTA_COUNTERS_PACKETS])   c->packets = lct_be64(tb[CTA_COUNTERS_PACKETS]);
	if (tb[CTA_COUNTERS32_BYTES])   c->bytes = lct_be32(tb[CTA_COUNTERS32_BYTES]);
	if (tb[CTA_COUNTERS_BYTES])     c->bytes = lct_be64(tb[CTA_COUNTERS_BYTES]);
}

/* ---- the line ---- */

static const char *const tcp_states[] = {
	"NONE", "SYN_SENT", "SYN_RECV", "ESTABLISHED", "FIN_WAIT", "CLOSE_WAIT",
	"LAST_ACK", "TIME_WAIT", "CLOSE", "SYN_SENT2"
};
/* the library names the first 8 SCTP states; past them it would print "(null)" */
static const char *const sctp_states[] = {
	"NONE", "CLOSED", "COOKIE_WAIT", "COOKIE_ECHOED", "ESTABLISHED",
	"SHUTDOWN_SENT", "SHUTDOWN_RECD", "SHUTDOWN_ACK_SENT"
};
#define NSTATES(a) (sizeof(a) / sizeof((a)[0]))

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

static const char *l4_name(uint8_t proto)
{
	switch (proto) {
	case IPPROTO_TCP: return "tcp";
	case IPPROTO_UDP: return "udp";
	case IPPROTO_UDPLITE: return "udplite";
	case IPPROTO_ICMP: return "icmp";
	case IPPROTO_ICMPV6: return "icmpv6";
	case IPPROTO_SCTP: return "sctp";
	case IPPROTO_GRE: return "gre";
	case IPPROTO_DCCP: return "dccp";
	}
	return "unknown";
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

	lct_attrs_of(LCT_PAYLOAD(nest), LCT_PAYLOAD_LEN(nest), tb, CTA_PROTOINFO_TCP_MAX);
	return tb[CTA_PROTOINFO_TCP_STATE] ? LCT_PAYLOAD(tb[CTA_PROTOINFO_TCP_STATE])[0] : -1;
}

/* The line of the flow in nlh (a validated IPCTNL_MSG_CT_NEW or _DELETE
 * message) into buf, which holds LCT_LINE_MAX bytes: its length, or -1 when
 * the line is one this file leaves to nfct_snprintf. ptype and flags as
 * nfct_snprintf takes them (NFCT_O_DEFAULT); labels: labels are shown. */
int lct_format_message(char *buf, const struct nlmsghdr *nlh, unsigned int ptype, unsigned int flags, int labels)
{
	const struct nlattr *tb[CTA_LABELS + 1], *pi[CTA_PROTOINFO_MAX + 1];
	const struct nfgenmsg *nfh = mnl_nlmsg_get_payload(nlh);
	size_t head = MNL_NLMSG_HDRLEN + MNL_ALIGN(sizeof(struct nfgenmsg));
	uint8_t family = nfh->nfgen_family;
	struct tuple orig, reply;
	struct counters corig, creply;
	int tcp_state = -1, sctp_state = -1;
	uint32_t status = 0;
	char *p = buf;

	if ((flags & ~(unsigned)(NFCT_OF_SHOW_LAYER3 | NFCT_OF_ID | NFCT_OF_TIMESTAMP)) ||
	    (family != AF_INET && family != AF_INET6) || nlh->nlmsg_len < head)
		return -1;
	lct_attrs_of((const char *)nlh + head, (int)(nlh->nlmsg_len - head), tb, CTA_LABELS);
	if (!tb[CTA_TUPLE_ORIG] || !tb[CTA_TUPLE_REPLY] || tb[CTA_HELP] || tb[CTA_SECCTX] ||
	    (labels && tb[CTA_LABELS] && LCT_PAYLOAD_LEN(tb[CTA_LABELS]) > 0))
		return -1;
	if (tb[CTA_PROTOINFO]) {
		lct_attrs_of(LCT_PAYLOAD(tb[CTA_PROTOINFO]), LCT_PAYLOAD_LEN(tb[CTA_PROTOINFO]), pi, CTA_PROTOINFO_MAX);
		/* the library keeps the states of all three in one union */
		if (pi[CTA_PROTOINFO_DCCP] || (pi[CTA_PROTOINFO_TCP] && pi[CTA_PROTOINFO_SCTP]))
			return -1;
		if (pi[CTA_PROTOINFO_TCP] && (tcp_state = state_of(pi[CTA_PROTOINFO_TCP])) >= (int)NSTATES(tcp_states))
			return -1;
		if (pi[CTA_PROTOINFO_SCTP] && (sctp_state = state_of(pi[CTA_PROTOINFO_SCTP])) >= (int)NSTATES(sctp_states))
			return -1;
	}
	if (tb[CTA_TIMESTAMP]) {
		const struct nlattr *ts[CTA_TIMESTAMP_MAX + 1];
		lct_attrs_of(LCT_PAYLOAD(tb[CTA_TIMESTAMP]), LCT_PAYLOAD_LEN(tb[CTA_TIMESTAMP]), ts, CTA_TIMESTAMP_MAX);
		if ((flags & NFCT_OF_TIMESTAMP) && (ts[CTA_TIMESTAMP_START] || ts[CTA_TIMESTAMP_STOP]))
			return -1;
	}
	read_tuple(tb[CTA_TUPLE_ORIG], &orig);
	read_tuple(tb[CTA_TUPLE_REPLY], &reply);
	/* the library prints no line without the protocol (-1) */
	if (!orig.has_proto)
		return -1;
	read_counters(tb[CTA_COUNTERS_ORIG], &corig);
	read_counters(tb[CTA_COUNTERS_REPLY], &creply);
	if (tb[CTA_STATUS])
		status = lct_be32(tb[CTA_STATUS]);

	switch (ptype) {
	case NFCT_T_NEW:     p = PUT(p, "    [NEW] "); break;
	case NFCT_T_UPDATE:  p = PUT(p, " [UPDATE] "); break;
	case NFCT_T_DESTROY: p = PUT(p, "[DESTROY] "); break;
	}
	if (flags & NFCT_OF_SHOW_LAYER3)
		p = put_proto(p, family, family == AF_INET ? "ipv4" : "ipv6");
	p = put_proto(p, orig.proto, l4_name(orig.proto));
	if (tb[CTA_TIMEOUT]) {
		p = put_u32(p, lct_be32(tb[CTA_TIMEOUT]));
		*p++ = ' ';
	}
	if (tcp_state >= 0) {
		p = put_str(p, tcp_states[tcp_state], strlen(tcp_states[tcp_state]));
		*p++ = ' ';
	}
	if (sctp_state >= 0) {
		p = put_str(p, sctp_states[sctp_state], strlen(sctp_states[sctp_state]));
		*p++ = ' ';
	}
	p = put_tuple(p, &orig, family, "zone-orig=", 10);
	p = put_counters(p, &corig);
	if (tb[CTA_STATUS] && !(status & IPS_SEEN_REPLY))
		p = PUT(p, "[UNREPLIED] ");
	p = put_tuple(p, &reply, family, "zone-reply=", 11);
	p = put_counters(p, &creply);
	if (tb[CTA_STATUS]) {
		if (status & IPS_HW_OFFLOAD)     p = PUT(p, "[HW_OFFLOAD] ");
		else if (status & IPS_OFFLOAD)   p = PUT(p, "[OFFLOAD] ");
		else if (status & IPS_ASSURED)   p = PUT(p, "[ASSURED] ");
	}
	if (tb[CTA_MARK]) {
		p = PUT(p, "mark=");
		p = put_u32(p, lct_be32(tb[CTA_MARK]));
		*p++ = ' ';
	}
	if (tb[CTA_SECMARK]) {
		p = PUT(p, "secmark=");
		p = put_u32(p, lct_be32(tb[CTA_SECMARK]));
		*p++ = ' ';
	}
	if (tb[CTA_ZONE]) {
		p = PUT(p, "zone=");
		p = put_u32(p, (uint32_t)LCT_PAYLOAD(tb[CTA_ZONE])[0] << 8 | LCT_PAYLOAD(tb[CTA_ZONE])[1]);
		*p++ = ' ';
	}
	if (tb[CTA_TIMESTAMP]) {
		const struct nlattr *ts[CTA_TIMESTAMP_MAX + 1];
		lct_attrs_of(LCT_PAYLOAD(tb[CTA_TIMESTAMP]), LCT_PAYLOAD_LEN(tb[CTA_TIMESTAMP]), ts, CTA_TIMESTAMP_MAX);
		if (ts[CTA_TIMESTAMP_START]) {
			/* as the library: a flow not yet stopped is measured against now */
			uint64_t stop = ts[CTA_TIMESTAMP_STOP] ? lct_be64(ts[CTA_TIMESTAMP_STOP]) : 0;
			time_t end = stop == 0 ? time(NULL) : (time_t)(stop / 1000000000u);
			time_t delta = end - (time_t)(lct_be64(ts[CTA_TIMESTAMP_START]) / 1000000000u);
			p = PUT(p, "delta-time=");
			p = put_u64(p, (uint64_t)(long long)delta);
			*p++ = ' ';
		}
	}
	if (tb[CTA_USE]) {
		p = PUT(p, "use=");
		p = put_u32(p, lct_be32(tb[CTA_USE]));
		*p++ = ' ';
	}
	if ((flags & NFCT_OF_ID) && tb[CTA_ID]) {
		p = PUT(p, "id=");
		p = put_u32(p, lct_be32(tb[CTA_ID]));
		*p++ = ' ';
	}
	/* the library deletes the last blank */
	*--p = '\0';
	return (int)(p - buf);
}
