/*
 * json.c: a flow as one JSON object, written straight from its validated
 * ctnetlink message (as format.c writes conntrack's line): the module's field
 * names in their order, each value as flow:totable() gives it (status and
 * labels as lists), integers with every digit. What it does not cover (labels,
 * helpers, security contexts, expected flows' master tuples, tuples the
 * library's unions would mix up) it
 * declines, and the caller writes the object from the parsed flow
 * (flow_json.c). Also the pieces both writers share. No Lua.
 */
#include <string.h>
#include <netinet/in.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>

#include "lct.h"

/* ---- values ---- */

char *msg_json_uint(char *p, uint64_t v)
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

/* A string as the command line's encoder writes it: control characters
 * (iscntrl: 0-31 and 127), quote and backslash escaped; p has room for
 * 6 * len + 2 bytes. */
char *msg_json_string(char *p, const char *s, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	size_t i;

	*p++ = '"';
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		const char *esc = NULL;
		switch (c) {
		case '"':  esc = "\\\""; break;
		case '\\': esc = "\\\\"; break;
		case '\b': esc = "\\b"; break;
		case '\f': esc = "\\f"; break;
		case '\n': esc = "\\n"; break;
		case '\r': esc = "\\r"; break;
		case '\t': esc = "\\t"; break;
		}
		if (esc) {
			*p++ = esc[0];
			*p++ = esc[1];
		} else if (c < 32 || c == 127) {
			memcpy(p, "\\u00", 4);
			p[4] = hex[c >> 4];
			p[5] = hex[c & 15];
			p += 6;
		} else {
			*p++ = (char)c;
		}
	}
	*p++ = '"';
	return p;
}

/* The status word as the list of its flags' names, in bit order. */
char *msg_json_status(char *p, uint32_t status)
{
	int i, first = 1;

	*p++ = '[';
	for (i = 0; msg_status_names[i]; i++)
		if (status & (1u << i)) {
			if (!first)
				*p++ = ',';
			p = msg_json_string(p, msg_status_names[i], strlen(msg_status_names[i]));
			first = 0;
		}
	*p++ = ']';
	return p;
}

/* "," unless the object has no member yet, then "\"name\":" */
char *msg_json_key(char *p, const char *name, int *members)
{
	size_t len = strlen(name);

	if ((*members)++)
		*p++ = ',';
	*p++ = '"';
	memcpy(p, name, len);
	p += len;
	*p++ = '"';
	*p++ = ':';
	return p;
}

/* ---- the message ---- */

/* One tuple's attributes, NULL where absent. */
struct jtuple {
	const struct nlattr *src, *dst, *sport, *dport, *proto, *zone;
	const struct nlattr *icmp[3];     /* type, code, id (of ICMP or ICMPv6) */
};

/* 0, or -1 where the library's unions would show something else than the
 * message says: an address in both families, ICMP fields of both kinds. */
static int read_tuple(const struct nlattr *nest, uint8_t family, struct jtuple *t)
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

static int has_icmp(const struct jtuple *t)
{
	return t->icmp[0] || t->icmp[1] || t->icmp[2];
}

static uint16_t be16(const struct nlattr *attr)
{
	return (uint16_t)(MSG_PAYLOAD(attr)[0] << 8 | MSG_PAYLOAD(attr)[1]);
}

/* The state of the only protoinfo nest (of the flow's own protocol), or
 * NULL; -1 where there are several (they share a union in the library). */
static int read_protoinfo(const struct nlattr *nest, uint8_t proto, const struct nlattr **state,
                          const struct nlattr **vtag)
{
	const struct nlattr *pi[CTA_PROTOINFO_MAX + 1], *tb[CTA_PROTOINFO_TCP_MAX + 1];
	int which = 0, n = 0;

	state[0] = vtag[0] = vtag[1] = NULL;
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
		vtag[0] = tb[CTA_PROTOINFO_SCTP_VTAG_ORIGINAL];
		vtag[1] = tb[CTA_PROTOINFO_SCTP_VTAG_REPLY];
	}
	/* a flow reads the state of its own protocol only */
	if ((which == CTA_PROTOINFO_TCP && proto == IPPROTO_TCP) ||
	    (which == CTA_PROTOINFO_SCTP && proto == IPPROTO_SCTP) ||
	    (which == CTA_PROTOINFO_DCCP && proto == IPPROTO_DCCP))
		state[0] = tb[which == CTA_PROTOINFO_TCP ? CTA_PROTOINFO_TCP_STATE
		              : which == CTA_PROTOINFO_SCTP ? CTA_PROTOINFO_SCTP_STATE : CTA_PROTOINFO_DCCP_STATE];
	return 0;
}

/* The counters of one direction: packets and bytes, NULL where absent (the
 * 64-bit attribute read over the 32-bit one, as the library does). */
static void read_counters(const struct nlattr *nest, const struct nlattr **c)
{
	const struct nlattr *tb[CTA_COUNTERS_MAX + 1];

	c[0] = c[1] = NULL;
	if (nest == NULL)
		return;
	msg_attrs_of(MSG_PAYLOAD(nest), MSG_PAYLOAD_LEN(nest), tb, CTA_COUNTERS_MAX);
	c[0] = tb[CTA_COUNTERS_PACKETS] ? tb[CTA_COUNTERS_PACKETS] : tb[CTA_COUNTERS32_PACKETS];
	c[1] = tb[CTA_COUNTERS_BYTES] ? tb[CTA_COUNTERS_BYTES] : tb[CTA_COUNTERS32_BYTES];
}

static uint64_t counter(const struct nlattr *attr)
{
	return MSG_PAYLOAD_LEN(attr) == 8 ? msg_be64(attr) : msg_be32(attr);
}

static char *put_text(char *p, const char *name, int *m, const char *s)
{
	p = msg_json_key(p, name, m);
	return msg_json_string(p, s, strlen(s));
}

static char *put_uint(char *p, const char *name, int *m, uint64_t v)
{
	return msg_json_uint(msg_json_key(p, name, m), v);
}

static char *put_addr(char *p, const char *name, int *m, uint8_t family, const struct nlattr *attr)
{
	char text[64];

	if (attr == NULL)
		return p;
	msg_addr_text(text, family, MSG_PAYLOAD(attr));
	return put_text(p, name, m, text);
}

static char *put_u16(char *p, const char *name, int *m, const struct nlattr *attr)
{
	return attr ? put_uint(p, name, m, be16(attr)) : p;
}

static char *put_u32(char *p, const char *name, int *m, const struct nlattr *attr)
{
	return attr ? put_uint(p, name, m, msg_be32(attr)) : p;
}

static char *put_bool(char *p, const char *name, int *m, int v)
{
	p = msg_json_key(p, name, m);
	memcpy(p, v ? "true" : "false", v ? 4 : 5);
	return p + (v ? 4 : 5);
}

/* snat: the reply's destination (address, or port where the protocol has
 * ports) is not the original source; dnat: the reply's source is not the
 * original destination. Absent without both addresses. */
static char *put_nat(char *p, const char *name, int *m, const struct nlattr *reply_addr,
                     const struct nlattr *orig_addr, const struct nlattr *reply_port,
                     const struct nlattr *orig_port, int ports)
{
	int differ;

	if (reply_addr == NULL || orig_addr == NULL)
		return p;
	differ = memcmp(MSG_PAYLOAD(reply_addr), MSG_PAYLOAD(orig_addr), (size_t)MSG_PAYLOAD_LEN(orig_addr)) != 0;
	if (ports && reply_port && orig_port && be16(reply_port) != be16(orig_port))
		differ = 1;
	return put_bool(p, name, m, differ);
}

/* The object of the flow in nlh (a validated IPCTNL_MSG_CT_NEW or _DELETE
 * message) into buf (MSG_JSON_MAX bytes), without newline: its length, or
 * -1 when the object is one for flow_json.c to write from the parsed flow. */
int msg_format_json(char *buf, const struct nlmsghdr *nlh)
{
	const struct nfgenmsg *nfh = mnl_nlmsg_get_payload(nlh);
	size_t head = MNL_NLMSG_HDRLEN + MNL_ALIGN(sizeof(struct nfgenmsg));
	const struct nlattr *tb[CTA_LABELS + 1], *state = NULL, *vtag[2] = { NULL, NULL };
	const struct nlattr *corig[2], *creply[2], *ts[CTA_TIMESTAMP_MAX + 1];
	struct jtuple o, r;
	uint8_t family = nfh->nfgen_family, proto;
	const char *name;
	char *p = buf;
	int m = 0, i, ports;

	if ((family != AF_INET && family != AF_INET6) || nlh->nlmsg_len < head)
		return -1;
	msg_attrs_of((const char *)nlh + head, (int)(nlh->nlmsg_len - head), tb, CTA_LABELS);
	/* (the library's master tuple sets ICMP fields of the flow's own) */
	if (!tb[CTA_TUPLE_ORIG] || !tb[CTA_TUPLE_REPLY] || tb[CTA_TUPLE_MASTER] || tb[CTA_HELP] || tb[CTA_SECCTX] ||
	    tb[CTA_LABELS] ||
	    read_tuple(tb[CTA_TUPLE_ORIG], family, &o) < 0 || read_tuple(tb[CTA_TUPLE_REPLY], family, &r) < 0)
		return -1;
	/* the library keeps ports and ICMP fields in one union per tuple, and
	 * its ICMP setters write both tuples' */
	if (o.proto == NULL || has_icmp(&r) ||
	    (has_icmp(&o) && (o.sport || o.dport || r.sport || r.dport)))
		return -1;
	proto = MSG_PAYLOAD(o.proto)[0];
	if (tb[CTA_PROTOINFO] && read_protoinfo(tb[CTA_PROTOINFO], proto, &state, vtag) < 0)
		return -1;

	*p++ = '{';
	p = put_text(p, "family", &m, family == AF_INET ? "ipv4" : "ipv6");
	name = msg_proto_name(proto);
	p = name ? put_text(p, "proto", &m, name) : put_uint(p, "proto", &m, proto);
	p = put_addr(p, "orig_src", &m, family, o.src);
	p = put_addr(p, "orig_dst", &m, family, o.dst);
	p = put_addr(p, "reply_src", &m, family, r.src);
	p = put_addr(p, "reply_dst", &m, family, r.dst);
	p = put_u16(p, "orig_sport", &m, o.sport);
	p = put_u16(p, "orig_dport", &m, o.dport);
	p = put_u16(p, "reply_sport", &m, r.sport);
	p = put_u16(p, "reply_dport", &m, r.dport);
	if (o.icmp[0]) p = put_uint(p, "icmp_type", &m, MSG_PAYLOAD(o.icmp[0])[0]);
	if (o.icmp[1]) p = put_uint(p, "icmp_code", &m, MSG_PAYLOAD(o.icmp[1])[0]);
	p = put_u16(p, "icmp_id", &m, o.icmp[2]);
	if (state) {
		unsigned int s = MSG_PAYLOAD(state)[0];
		name = msg_state_name(proto, s);
		p = name ? put_text(p, "state", &m, name) : put_uint(p, "state", &m, s);
	}
	p = put_u32(p, "orig_vtag", &m, vtag[0]);
	p = put_u32(p, "reply_vtag", &m, vtag[1]);
	if (tb[CTA_STATUS])
		p = msg_json_status(msg_json_key(p, "status", &m), msg_be32(tb[CTA_STATUS]));
	p = put_u32(p, "timeout", &m, tb[CTA_TIMEOUT]);
	p = put_u32(p, "mark", &m, tb[CTA_MARK]);
	p = put_u32(p, "secmark", &m, tb[CTA_SECMARK]);
	p = put_u32(p, "use", &m, tb[CTA_USE]);
	p = put_u32(p, "id", &m, tb[CTA_ID]);
	/* the kernel sends no zone for the default zone: a flow reads 0 */
	p = put_uint(p, "zone", &m, tb[CTA_ZONE] ? be16(tb[CTA_ZONE]) : 0);
	p = put_uint(p, "orig_zone", &m, o.zone ? be16(o.zone) : 0);
	p = put_uint(p, "reply_zone", &m, r.zone ? be16(r.zone) : 0);
	read_counters(tb[CTA_COUNTERS_ORIG], corig);
	read_counters(tb[CTA_COUNTERS_REPLY], creply);
	if (corig[0])  p = put_uint(p, "orig_packets", &m, counter(corig[0]));
	if (corig[1])  p = put_uint(p, "orig_bytes", &m, counter(corig[1]));
	if (creply[0]) p = put_uint(p, "reply_packets", &m, counter(creply[0]));
	if (creply[1]) p = put_uint(p, "reply_bytes", &m, counter(creply[1]));
	if (tb[CTA_TIMESTAMP]) {
		msg_attrs_of(MSG_PAYLOAD(tb[CTA_TIMESTAMP]), MSG_PAYLOAD_LEN(tb[CTA_TIMESTAMP]), ts, CTA_TIMESTAMP_MAX);
		for (i = 0; i < 2; i++)
			if (ts[i ? CTA_TIMESTAMP_STOP : CTA_TIMESTAMP_START])
				p = put_uint(p, i ? "stop" : "start", &m, msg_be64(ts[i ? CTA_TIMESTAMP_STOP : CTA_TIMESTAMP_START]));
	}
	ports = msg_proto_has_ports(proto);
	p = put_nat(p, "snat", &m, r.dst, o.src, r.dport, o.sport, ports);
	p = put_nat(p, "dnat", &m, r.src, o.dst, r.sport, o.dport, ports);
	*p++ = '}';
	*p = '\0';
	return (int)(p - buf);
}
