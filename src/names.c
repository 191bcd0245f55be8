/*
 * names.c: the names of the message layer's numbers, one table each: layer-4
 * protocols, TCP/SCTP/DCCP states, status flags. Read by format.c for
 * conntrack's lines, by the binding for fields and filters, and exported to
 * Lua (conntrack.protocols, .states, .status_flags) for lua/. No Lua.
 */
#include <string.h>
#include <netinet/in.h>

#include "lct.h"

const struct msg_proto msg_protos[] = {
	{ IPPROTO_TCP, "tcp", 1 }, { IPPROTO_UDP, "udp", 1 }, { IPPROTO_UDPLITE, "udplite", 1 },
	{ IPPROTO_ICMP, "icmp", 0 }, { IPPROTO_ICMPV6, "icmpv6", 0 }, { IPPROTO_SCTP, "sctp", 1 },
	{ IPPROTO_DCCP, "dccp", 1 }, { IPPROTO_GRE, "gre", 1 },
};
const int msg_nprotos = sizeof(msg_protos) / sizeof(msg_protos[0]);

static const char *const tcp_states[] = {
	"NONE", "SYN_SENT", "SYN_RECV", "ESTABLISHED", "FIN_WAIT", "CLOSE_WAIT",
	"LAST_ACK", "TIME_WAIT", "CLOSE", "SYN_SENT2", NULL
};
static const char *const sctp_states[] = {
	"NONE", "CLOSED", "COOKIE_WAIT", "COOKIE_ECHOED", "ESTABLISHED",
	"SHUTDOWN_SENT", "SHUTDOWN_RECD", "SHUTDOWN_ACK_SENT", "HEARTBEAT_SENT",
	"HEARTBEAT_ACKED", NULL
};
static const char *const dccp_states[] = {
	"NONE", "REQUEST", "RESPOND", "PARTOPEN", "OPEN", "CLOSEREQ", "CLOSING",
	"TIMEWAIT", NULL
};

/* libnetfilter_conntrack's printer names the first 8 SCTP states only (past
 * them it would print "(null)"), the first 10 TCP states, no DCCP state. */
const struct msg_states msg_states[] = {
	{ IPPROTO_TCP, tcp_states, 10 }, { IPPROTO_SCTP, sctp_states, 8 }, { IPPROTO_DCCP, dccp_states, 0 },
};
const int msg_nstates = sizeof(msg_states) / sizeof(msg_states[0]);

/* bit i of the kernel's status word (enum ip_conntrack_status) */
const char *const msg_status_names[] = {
	"EXPECTED", "SEEN_REPLY", "ASSURED", "CONFIRMED", "SRC_NAT", "DST_NAT",
	"SEQ_ADJUST", "SRC_NAT_DONE", "DST_NAT_DONE", "DYING", "FIXED_TIMEOUT",
	"TEMPLATE", "NAT_CLASH", "HELPER", "OFFLOAD", "HW_OFFLOAD", NULL
};

const struct msg_proto *msg_proto(uint8_t num)
{
	int i;

	for (i = 0; i < msg_nprotos; i++)
		if (msg_protos[i].num == num)
			return &msg_protos[i];
	return NULL;
}

const char *msg_proto_name(uint8_t num)
{
	const struct msg_proto *p = msg_proto(num);

	return p ? p->name : NULL;
}

int msg_proto_number(const char *name)
{
	int i;

	for (i = 0; i < msg_nprotos; i++)
		if (strcmp(msg_protos[i].name, name) == 0)
			return msg_protos[i].num;
	return -1;
}

int msg_proto_has_ports(uint8_t num)
{
	const struct msg_proto *p = msg_proto(num);

	return p != NULL && p->ports;
}

int msg_proto_is_icmp(uint8_t num)
{
	return num == IPPROTO_ICMP || num == IPPROTO_ICMPV6;
}

const struct msg_states *msg_states_of(uint8_t proto)
{
	int i;

	for (i = 0; i < msg_nstates; i++)
		if (msg_states[i].proto == proto)
			return &msg_states[i];
	return NULL;
}

/* The number of a state name, LISTEN being TCP's alias of SYN_SENT2; -1. */
int msg_state_number(uint8_t proto, const char *name)
{
	const struct msg_states *s = msg_states_of(proto);
	int i;

	if (s == NULL)
		return -1;
	if (proto == IPPROTO_TCP && strcmp(name, "LISTEN") == 0)
		return 9;
	for (i = 0; s->names[i]; i++)
		if (strcmp(s->names[i], name) == 0)
			return i;
	return -1;
}

const char *msg_state_name(uint8_t proto, unsigned int state)
{
	const struct msg_states *s = msg_states_of(proto);
	unsigned int i;

	for (i = 0; s && s->names[i]; i++)
		if (i == state)
			return s->names[i];
	return NULL;
}
