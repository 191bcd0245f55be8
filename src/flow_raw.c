/*
 * flow_raw.c: a flow of a dump held as the kernel's message (flow.c's
 * lct_flow_push_unparsed) until Lua code needs the library's object. A loop
 * that counts never parses; one that reads fields reads them from the
 * message (view.c), its view kept beside the message; a method, or a
 * message a view declines, parses it in place.
 */
#include <string.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>

#include "lct.h"

/* The view of the message, as offsets into it (0: absent), at the end of
 * the flow's room: a view of pointers would not fit beside the message. */
enum { T_SRC, T_DST, T_SPORT, T_DPORT, T_PROTO, T_ZONE, T_ICMP, T_END = T_ICMP + 3 };
static const int top_types[] = { CTA_STATUS, CTA_TIMEOUT, CTA_MARK, CTA_SECMARK, CTA_USE, CTA_ID, CTA_ZONE };
#define NTOP (sizeof(top_types) / sizeof(top_types[0]))
enum { P_ORIG = 0, P_REPLY = T_END, P_STATE = 2 * T_END, P_VTAG, P_COUNTERS = P_VTAG + 2, P_START = P_COUNTERS + 4,
       P_STOP, P_TOP, P_COUNT = P_TOP + NTOP };
enum { UNVIEWED, VIEWED, FOR_THE_LIBRARY };
struct packed {
	uint8_t state, family, proto;
	uint16_t off[P_COUNT];
};

static struct packed *packed_of(struct flow *fl)
{
	return (struct packed *)((char *)fl + LCT_FLOW_HEADER + msg_ct_size() - sizeof(struct packed));
}

/* The room left for a message beside its view: at most LCT_FLOW_RAW_MAX. */
size_t lct_flow_raw_room(void)
{
	size_t room = msg_ct_size() - sizeof(struct packed);

	return room < LCT_FLOW_RAW_MAX ? room : LCT_FLOW_RAW_MAX;
}

/* A flow that now holds the message of len bytes at its place: not viewed yet. */
void lct_flow_raw_hold(struct flow *fl, size_t len)
{
	packed_of(fl)->state = UNVIEWED;
	fl->raw = (uint16_t)len;
}

/* The flow's message checked and parsed into its place (as msg_parse does):
 * 0, or -1 (the message is left as it was). */
int lct_flow_parse_raw(struct flow *fl)
{
	uint64_t raw[LCT_FLOW_RAW_MAX / 8];
	const struct nlmsghdr *nlh = (const struct nlmsghdr *)raw;
	struct nf_conntrack *ct = (struct nf_conntrack *)((char *)fl + LCT_FLOW_HEADER);
	size_t head = MNL_NLMSG_HDRLEN + MNL_ALIGN(sizeof(struct nfgenmsg));

	memcpy(raw, ct, fl->raw);
	if (msg_check(nlh) < 0)
		return -1;
	memset(ct, 0, msg_ct_size());
	if (msg_parse_fast(nlh, ct) != 0) {
		memset(ct, 0, msg_ct_size());
		if (nfct_payload_parse((const char *)nlh + head, nlh->nlmsg_len - head,
		                       ((const struct nfgenmsg *)mnl_nlmsg_get_payload(nlh))->nfgen_family, ct) < 0)
			return -1;
	}
	fl->raw = 0;
	fl->ct = ct;
	return 0;
}

static uint16_t off_of(const struct nlmsghdr *nlh, const struct nlattr *attr)
{
	return attr ? (uint16_t)((const char *)attr - (const char *)nlh) : 0;
}

static const struct nlattr *attr_at(const struct nlmsghdr *nlh, uint16_t off)
{
	return off ? (const struct nlattr *)((const char *)nlh + off) : NULL;
}

static void pack_tuple(const struct nlmsghdr *nlh, const struct msg_tuple *t, uint16_t *off)
{
	int i;

	off[T_SRC] = off_of(nlh, t->src);
	off[T_DST] = off_of(nlh, t->dst);
	off[T_SPORT] = off_of(nlh, t->sport);
	off[T_DPORT] = off_of(nlh, t->dport);
	off[T_PROTO] = off_of(nlh, t->proto);
	off[T_ZONE] = off_of(nlh, t->zone);
	for (i = 0; i < 3; i++)
		off[T_ICMP + i] = off_of(nlh, t->icmp[i]);
}

static void unpack_tuple(const struct nlmsghdr *nlh, const uint16_t *off, struct msg_tuple *t)
{
	int i;

	t->src = attr_at(nlh, off[T_SRC]);
	t->dst = attr_at(nlh, off[T_DST]);
	t->sport = attr_at(nlh, off[T_SPORT]);
	t->dport = attr_at(nlh, off[T_DPORT]);
	t->proto = attr_at(nlh, off[T_PROTO]);
	t->zone = attr_at(nlh, off[T_ZONE]);
	for (i = 0; i < 3; i++)
		t->icmp[i] = attr_at(nlh, off[T_ICMP + i]);
}

static void pack(const struct nlmsghdr *nlh, const struct msg_view *v, struct packed *p)
{
	size_t i;

	p->family = v->family;
	p->proto = v->proto;
	pack_tuple(nlh, &v->orig, p->off + P_ORIG);
	pack_tuple(nlh, &v->reply, p->off + P_REPLY);
	p->off[P_STATE] = off_of(nlh, v->state);
	p->off[P_VTAG] = off_of(nlh, v->vtag[0]);
	p->off[P_VTAG + 1] = off_of(nlh, v->vtag[1]);
	for (i = 0; i < 4; i++)
		p->off[P_COUNTERS + i] = off_of(nlh, v->counters[i / 2][i % 2]);
	p->off[P_START] = off_of(nlh, v->start);
	p->off[P_STOP] = off_of(nlh, v->stop);
	for (i = 0; i < NTOP; i++)
		p->off[P_TOP + i] = off_of(nlh, v->tb[top_types[i]]);
}

/* The view again, as far as lct_key_from_view reads it: of the top level,
 * top_types only (the rest of v->tb is left as it was). */
static void unpack(const struct nlmsghdr *nlh, const struct packed *p, struct msg_view *v)
{
	size_t i;

	v->family = p->family;
	v->proto = p->proto;
	unpack_tuple(nlh, p->off + P_ORIG, &v->orig);
	unpack_tuple(nlh, p->off + P_REPLY, &v->reply);
	v->state = attr_at(nlh, p->off[P_STATE]);
	v->vtag[0] = attr_at(nlh, p->off[P_VTAG]);
	v->vtag[1] = attr_at(nlh, p->off[P_VTAG + 1]);
	for (i = 0; i < 4; i++)
		v->counters[i / 2][i % 2] = attr_at(nlh, p->off[P_COUNTERS + i]);
	v->start = attr_at(nlh, p->off[P_START]);
	v->stop = attr_at(nlh, p->off[P_STOP]);
	for (i = 0; i < NTOP; i++)
		v->tb[top_types[i]] = attr_at(nlh, p->off[P_TOP + i]);
}

/* Pushes field `field` of a flow held as its message, read from it as the
 * parsed flow would read it: 1; 0 (nothing pushed) where the flow must be
 * parsed (a field a view lacks, a message a view declines, or one that is
 * malformed: the parse says so). The first read checks the message. */
int lct_flow_raw_field(lua_State *L, struct flow *fl, int field)
{
	const struct nlmsghdr *nlh = (const struct nlmsghdr *)((char *)fl + LCT_FLOW_HEADER);
	struct packed *p = packed_of(fl);
	struct msg_view v;

	if (!fl->raw || p->state == FOR_THE_LIBRARY)
		return 0;
	if (p->state == UNVIEWED) {
		if (msg_check_index(nlh, v.tb, CTA_LABELS) < 0)
			return 0;
		if (msg_view_indexed(nlh, &v, VIEW_ALL) < 0) {
			p->state = FOR_THE_LIBRARY;
			return 0;
		}
		pack(nlh, &v, p);
		p->state = VIEWED;
	} else {
		unpack(nlh, p, &v);
	}
	return lct_field_push_view(L, &v, field);
}
