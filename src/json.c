/*
 * json.c: a flow as one JSON object, written straight from its validated
 * ctnetlink message (as format.c writes conntrack's line): the module's field
 * names in their order, each value as flow:totable() gives it (status and
 * labels as lists), integers with every digit. The messages view.c declines
 * it declines too, and the caller writes their object from the parsed flow
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

static char *put_u8(char *p, const char *name, int *m, const struct nlattr *attr)
{
	return attr ? put_uint(p, name, m, MSG_PAYLOAD(attr)[0]) : p;
}

static char *put_u16(char *p, const char *name, int *m, const struct nlattr *attr)
{
	return attr ? put_uint(p, name, m, msg_be16(attr)) : p;
}

static char *put_u32(char *p, const char *name, int *m, const struct nlattr *attr)
{
	return attr ? put_uint(p, name, m, msg_be32(attr)) : p;
}

static char *put_counter(char *p, const char *name, int *m, const struct nlattr *attr)
{
	return attr ? put_uint(p, name, m, msg_counter(attr)) : p;
}

static char *put_nat(char *p, const char *name, int *m, int nat)
{
	if (nat < 0)
		return p;
	p = msg_json_key(p, name, m);
	memcpy(p, nat ? "true" : "false", nat ? 4 : 5);
	return p + (nat ? 4 : 5);
}

/* The object of the flow in nlh (a validated IPCTNL_MSG_CT_NEW or _DELETE
 * message) into buf (MSG_JSON_MAX bytes), without newline: its length, or
 * -1 when the object is one for flow_json.c to write from the parsed flow. */
int msg_format_json(char *buf, const struct nlmsghdr *nlh)
{
	struct msg_view v;
	const struct nlattr *const *tb = v.tb;
	const char *name;
	char *p = buf;
	int m = 0;

	if (msg_view(nlh, &v) < 0)
		return -1;
	*p++ = '{';
	p = put_text(p, "family", &m, v.family == AF_INET ? "ipv4" : "ipv6");
	name = msg_proto_name(v.proto);
	p = name ? put_text(p, "proto", &m, name) : put_uint(p, "proto", &m, v.proto);
	p = put_addr(p, "orig_src", &m, v.family, v.orig.src);
	p = put_addr(p, "orig_dst", &m, v.family, v.orig.dst);
	p = put_addr(p, "reply_src", &m, v.family, v.reply.src);
	p = put_addr(p, "reply_dst", &m, v.family, v.reply.dst);
	p = put_u16(p, "orig_sport", &m, v.orig.sport);
	p = put_u16(p, "orig_dport", &m, v.orig.dport);
	p = put_u16(p, "reply_sport", &m, v.reply.sport);
	p = put_u16(p, "reply_dport", &m, v.reply.dport);
	p = put_u8(p, "icmp_type", &m, v.orig.icmp[0]);
	p = put_u8(p, "icmp_code", &m, v.orig.icmp[1]);
	p = put_u16(p, "icmp_id", &m, v.orig.icmp[2]);
	if (v.state) {
		unsigned int s = MSG_PAYLOAD(v.state)[0];
		name = msg_state_name(v.proto, s);
		p = name ? put_text(p, "state", &m, name) : put_uint(p, "state", &m, s);
	}
	p = put_u32(p, "orig_vtag", &m, v.vtag[0]);
	p = put_u32(p, "reply_vtag", &m, v.vtag[1]);
	if (tb[CTA_STATUS])
		p = msg_json_status(msg_json_key(p, "status", &m), msg_be32(tb[CTA_STATUS]));
	p = put_u32(p, "timeout", &m, tb[CTA_TIMEOUT]);
	p = put_u32(p, "mark", &m, tb[CTA_MARK]);
	p = put_u32(p, "secmark", &m, tb[CTA_SECMARK]);
	p = put_u32(p, "use", &m, tb[CTA_USE]);
	p = put_u32(p, "id", &m, tb[CTA_ID]);
	/* the kernel sends no zone for the default zone: a flow reads 0 */
	p = put_uint(p, "zone", &m, tb[CTA_ZONE] ? msg_be16(tb[CTA_ZONE]) : 0);
	p = put_uint(p, "orig_zone", &m, v.orig.zone ? msg_be16(v.orig.zone) : 0);
	p = put_uint(p, "reply_zone", &m, v.reply.zone ? msg_be16(v.reply.zone) : 0);
	p = put_counter(p, "orig_packets", &m, v.counters[0][0]);
	p = put_counter(p, "orig_bytes", &m, v.counters[0][1]);
	p = put_counter(p, "reply_packets", &m, v.counters[1][0]);
	p = put_counter(p, "reply_bytes", &m, v.counters[1][1]);
	if (v.start) p = put_uint(p, "start", &m, msg_be64(v.start));
	if (v.stop)  p = put_uint(p, "stop", &m, msg_be64(v.stop));
	p = put_nat(p, "snat", &m, msg_view_nat(&v, 0));
	p = put_nat(p, "dnat", &m, msg_view_nat(&v, 1));
	*p++ = '}';
	*p = '\0';
	return (int)(p - buf);
}
