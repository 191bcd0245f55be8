/*
 * lct.h: declarations shared by the C files of the conntrack module.
 * nl.c (netlink), validate.c (message layout), parse.c (a message into an
 * nf_conntrack) and format.c (a message into conntrack's line) are free of
 * Lua; every other file is one concern of the Lua binding (fields, filters,
 * flows, dumps, operations, changes, sweeps, events, the handle).
 */
#ifndef LCT_H
#define LCT_H

#include <signal.h>
#include <stdint.h>
#include <stddef.h>
#include <time.h>
#include <string.h>
#include <sys/types.h>
#include <arpa/inet.h>

#include <lua.h>
#include <lauxlib.h>
#include "compat.h"
#include <libmnl/libmnl.h>
#include <libnetfilter_conntrack/libnetfilter_conntrack.h>
#include <linux/netfilter/nfnetlink_conntrack.h>

#define LCT_VERSION "0.1.0"

/* metatable names, also the __name of each userdata */
#define LCT_HANDLE "conntrack.handle"
#define LCT_FLOW   "conntrack.flow"
#define LCT_FLOW_PLAIN "conntrack.flow (embedded)"   /* the metatable of flows without a finalizer */
#define LCT_DUMP   "conntrack.dump"
#define LCT_EVENTS "conntrack.events"
#define LCT_SWEEP  "conntrack.sweep"    /* scratch of a delete/update by filter */
#define LCT_STATUS "conntrack.status"   /* the metatable of a flow's status table */
#define LCT_SIGNALS "conntrack.signals"
/* The metatable at the top of the stack is not handed out: getmetatable()
 * gives its name instead. Its __gc then runs only when the collector finds
 * the object unreachable, never by a script's hand while C code uses it. */
static inline void lct_protect_metatable(lua_State *L, const char *name)
{
	lua_pushstring(L, name);
	lua_setfield(L, -2, "__metatable");
}
/* A class of userdata: its protected metatable holds meta, and methods as
 * __index. */
static inline void lct_new_class(lua_State *L, const char *name, const luaL_Reg *meta, const luaL_Reg *methods)
{
	luaL_newmetatable(L, name);
	luaL_setfuncs(L, meta, 0);
	lct_protect_metatable(L, name);
	lua_newtable(L);
	luaL_setfuncs(L, methods, 0);
	lua_setfield(L, -2, "__index");
	lua_pop(L, 1);
}
/* registry keys */
#define LCT_FIELDS   "conntrack.fields"     /* field name -> field id */
#define LCT_DEFAULT  "conntrack.default"    /* the handle of conntrack.dump{} etc. */

/* A receive buffer large enough for one datagram of a kernel dump. */
#define LCT_RECV_SIZE 32768
/* The largest request the module builds (one flow and a filter). */
#define LCT_REQUEST_MAX 4096

/* ---- nl.c: netlink, no Lua. Functions return 0/1 or -errno. ---- */
struct ahead;
struct nl {
	struct mnl_socket *sock;
	unsigned int portid;
	unsigned int seq;          /* sequence number of the last request */
	struct ahead *ahead;       /* a dump's reader thread (ahead.c), or NULL; set while sock is */
};

/* Walks the datagrams answering one request; each data message is handed out once. */
struct nl_reply {
	struct nl *nl;
	unsigned int seq;
	char *buf;
	size_t cap, len, off;
	int done;
	int read_ahead;            /* a dump's: its datagrams may be received ahead (ahead.c) */
	unsigned long received;    /* datagrams */
};

/* Many requests sent at once; each one asks for and gets its own ack. */
#define LCT_BATCH_MSGS 256
struct nl_batch {
	size_t len;
	unsigned int count;
	char buf[LCT_BATCH_MSGS * 256];
};
struct nl_acks {
	unsigned long ok, gone;    /* done; already gone (ENOENT) */
	int error;                 /* the first other errno, or 0 */
	unsigned int nfailed;      /* the requests of the last batch that failed, by position */
	struct { uint16_t index; int error; } failed[LCT_BATCH_MSGS];
};

int  nl_open(struct nl *nl, int netns_fd, unsigned int groups);
void nl_close(struct nl *nl);
int  nl_fd(const struct nl *nl);
int  nl_send(struct nl *nl, struct nlmsghdr *nlh);
ssize_t nl_receive(struct nl *nl, char *buf, size_t cap, int flags);
void nl_reply_init(struct nl_reply *r, struct nl *nl, char *buf, size_t cap);
int  nl_reply_next(struct nl_reply *r, const struct nlmsghdr **msg);
int  nl_reply_buffered(const struct nl_reply *r);

/* ---- ahead.c: a dump's datagrams received by a thread while Lua reads ---- */
int  nl_ahead_start(struct nl *nl, unsigned int seq);   /* 0, or -errno: not started */
ssize_t nl_ahead_take(struct ahead *a, char *buf);      /* LCT_RECV_SIZE bytes; 0: the thread has ended */
void nl_ahead_stop(struct ahead *a);
int  nl_request(struct nl *nl, struct nlmsghdr *nlh, char *buf, size_t cap,
                int (*cb)(const struct nlmsghdr *, void *), void *data);
struct nlmsghdr *nl_ct_header(char *buf, uint16_t type, uint16_t flags, uint8_t family);
struct nlmsghdr *nl_exp_header(char *buf, uint16_t type, uint16_t flags, uint8_t family);
int  nl_set_rcvbuf(struct nl *nl, int bytes);
void nl_batch_init(struct nl_batch *b);
int  nl_batch_full(const struct nl_batch *b);
char *nl_batch_slot(struct nl_batch *b);
void nl_batch_commit(struct nl_batch *b, struct nlmsghdr *nlh);
int  nl_batch_send(struct nl *nl, struct nl_batch *b, char *buf, size_t cap, struct nl_acks *acks);

/* ---- names.c: protocols, states and status flags by name, no Lua ---- */
struct msg_proto {
	uint8_t num;
	const char *name;
	int ports;                 /* its tuples have ports (GRE: keys) */
};
struct msg_states {
	uint8_t proto;
	const char *const *names;  /* by number, NULL-terminated */
	unsigned int printed;      /* how many of them libnetfilter_conntrack's printer names */
};
extern const struct msg_proto msg_protos[];
extern const int msg_nprotos;
extern const struct msg_states msg_states[];
extern const int msg_nstates;
extern const char *const msg_status_names[];   /* bit i of the status word; NULL-terminated */
const struct msg_proto *msg_proto(uint8_t num);
const char *msg_proto_name(uint8_t num);        /* NULL if it has none */
int  msg_proto_number(const char *name);        /* -1 if unknown */
int  msg_proto_has_ports(uint8_t num);
int  msg_proto_is_icmp(uint8_t num);
const struct msg_states *msg_states_of(uint8_t proto);   /* NULL: a protocol without states */
int  msg_state_number(uint8_t proto, const char *name);   /* -1 if unknown */
const char *msg_state_name(uint8_t proto, unsigned int state);

/* ---- fields.c: the one vocabulary of flow fields ---- */
enum field_kind {
	K_FAMILY, K_PROTO, K_ADDR, K_PORT, K_U8, K_U16BE, K_U16, K_U32, K_U64,
	K_STATE, K_STATUS, K_LABELS, K_STRING, K_NAT
};

/* Field ids: the index of each field in lct_fields. */
enum field_id {
	FIELD_FAMILY, FIELD_PROTO, FIELD_ORIG_SRC, FIELD_ORIG_DST, FIELD_REPLY_SRC, FIELD_REPLY_DST,
	FIELD_ORIG_SPORT, FIELD_ORIG_DPORT, FIELD_REPLY_SPORT, FIELD_REPLY_DPORT,
	FIELD_ICMP_TYPE, FIELD_ICMP_CODE, FIELD_ICMP_ID, FIELD_STATE, FIELD_ORIG_VTAG, FIELD_REPLY_VTAG,
	FIELD_STATUS, FIELD_TIMEOUT, FIELD_MARK, FIELD_SECMARK, FIELD_USE, FIELD_ID,
	FIELD_ZONE, FIELD_ORIG_ZONE, FIELD_REPLY_ZONE,
	FIELD_ORIG_PACKETS, FIELD_ORIG_BYTES, FIELD_REPLY_PACKETS, FIELD_REPLY_BYTES,
	FIELD_START, FIELD_STOP, FIELD_LABELS, FIELD_HELPER, FIELD_SECCTX, FIELD_SNAT, FIELD_DNAT,
	FIELD_COUNT
};

/* What each operation may do with a field: every field is read and
 * filtered; these say which others take it. */
enum field_cap {
	CAP_CREATE = 1,            /* create sets it */
	CAP_LOOKUP = 2,            /* get's key: the entry's identity */
	CAP_UPDATE = 4,            /* update changes it */
	CAP_MESSAGE = 16,          /* matched on the kernel's message, without parsing it */
	CAP_SOCKET = 32,           /* events' socket filter (BPF) can decide it */
};

struct field {
	const char *name;
	enum field_kind kind;
	int attr;                  /* the IPv4 attribute of an address */
	int attr6;                 /* its IPv6 twin; for K_NAT the attribute compared */
	unsigned int caps;         /* enum field_cap */
};

extern const struct field lct_fields[];
extern const int lct_nfields;

struct addr {
	uint8_t family;            /* AF_INET or AF_INET6 */
	uint8_t plen;              /* prefix length */
	uint32_t a[4];             /* network byte order */
};

/* Strings read as C strings: a NUL byte inside would cut them short. */
const char *lct_check_cstring(lua_State *L, int idx, const char *key);   /* a string at idx, or raises */
int  lct_key_is(lua_State *L, int idx, const char *name);   /* the string at idx is exactly name */
const char *lct_key_name(lua_State *L, int idx);     /* a key for a message ("?" unless a string) */
void lct_check_options(lua_State *L, int idx, const char *op, const char *const *names);
int  lct_unknown_option(lua_State *L, int key_idx, const char *op, const char *const *names);   /* raises */
void lct_fields_open(lua_State *L, int module);
int  lct_field_lookup(lua_State *L, int key_idx);       /* field id, or -1 */
int  lct_field_check_key(lua_State *L, int key_idx);    /* field id, or raises */
void lct_field_push(lua_State *L, const struct nf_conntrack *ct, int field);
void lct_field_push_number(lua_State *L, int field, uint64_t v, uint8_t proto);   /* proto: a state's */
int  lct_field_read_u64(const struct nf_conntrack *ct, int field, uint64_t *v);
int  lct_field_read_addr(const struct nf_conntrack *ct, int field, struct addr *a);
void lct_field_set(lua_State *L, int idx, const char *key, struct nf_conntrack *ct, int field);

void lct_check_addr(lua_State *L, int idx, const char *key, struct addr *a, int allow_prefix);
lua_Integer lct_check_list(lua_State *L, int idx, const char *key);   /* a non-empty list's length */
int  lct_check_proto(lua_State *L, int idx, const char *key);
int  lct_check_family(lua_State *L, int idx, const char *key);
int  lct_check_flush_options(lua_State *L, int idx, const char *op);   /* { family = } or none: the family, or 0 */
struct nfct_bitmask *lct_check_labels(lua_State *L, int idx, const char *key);
void lct_check_status(lua_State *L, int idx, const char *key, uint32_t *value, uint32_t *mask);
uint8_t lct_flow_proto(const struct nf_conntrack *ct);
int  lct_state_attr(uint8_t proto);         /* the library's attribute of its state, or -1 */

/* ---- number.c: kernel integers to and from Lua, exact on every Lua ---- */
#define LCT_UINT_TEXT 24           /* the decimal text of a u64, with its NUL */
void lct_push_uint(lua_State *L, uint64_t v);
uint64_t lct_check_uint(lua_State *L, int idx, const char *key, uint64_t max);
const char *lct_uint_text(char *buf, uint64_t v);

/* ---- prefixes.c: sets of addresses and prefixes, looked up without Lua ---- */
struct prefixes;
struct prefixes *lct_prefixes_check(lua_State *L, int idx, const char *key, int *negate);   /* pushes it */
int  lct_prefixes_has(const struct prefixes *p, const struct addr *a);
uint32_t lct_prefixes_count(const struct prefixes *p);
int  lct_prefixes_family(const struct prefixes *p);     /* AF_INET, AF_INET6, or 0: both */
void lct_prefixes_first(const struct prefixes *p, struct addr *a);
void lct_prefixes_open(lua_State *L, int module);

/* ---- bits.c: u32 bit operations on every Lua ---- */
void lct_bits_open(lua_State *L, int module);

/* ---- filter.c: a filter table -> kernel request + exact match in C ---- */
#define FIELD_ADDR FIELD_COUNT     /* the filter's `addr`: any of the four addresses */
/* A list of integers: items[0, nexact) under the full mask, sorted for a
 * binary search, then the { value, mask } pairs. */
struct value_mask { uint64_t value, mask; };
struct values {
	uint32_t n, nexact;
	struct value_mask items[];
};
struct term {
	int field;                 /* a field id, or FIELD_ADDR */
	int negate;                /* written "!...": holds when the value does not match */
	int single;                /* one value, not negated: what the kernel's filters may take */
	uint64_t value, mask;      /* one integer: (v & mask) == value */
	const struct values *values;       /* integers: a list (else value and mask) */
	const struct prefixes *prefixes;   /* addresses: one or a list */
	struct addr addr;          /* the address when the list has one; K_LABELS: the bits */
	int states[3];             /* K_STATE, one name: the number for tcp, sctp, dccp or -1 */
	uint32_t state_bits[3];    /* K_STATE: the states named, by protocol */
	char str[64];              /* K_STRING */
};

/* Kept in a userdata (lct_filter_parse pushes it), with its terms after it. */
struct filter {
	int nterms;
	struct term *terms;
	int nany;                  /* `any`: alternatives, one of which must match */
	const struct filter **any;
	int anchors;               /* userdatas held in its user value */
	uint8_t family;            /* AF_UNSPEC unless the filter pins one */
	int has_mark, has_status;  /* kernel-side: CTA_MARK/MASK, CTA_STATUS/MASK */
	uint32_t mark, mark_mask, status, status_mask;
	int has_where;             /* a Lua predicate follows the C match */
};

const struct filter *lct_filter_parse(lua_State *L, int idx);   /* pushes the compiled filter */
int  lct_filter_is_empty(const struct filter *f);
void lct_filter_to_request(const struct filter *f, struct nlmsghdr *nlh);
void lct_filter_push_where(lua_State *L, int idx);

/* ---- match.c: a compiled filter against a flow or a message, no Lua ---- */
extern const uint8_t lct_state_protos[3];   /* tcp, sctp, dccp: the protocols of term.states */
int  lct_filter_match(const struct filter *f, const struct nf_conntrack *ct);
int  lct_filter_on_message(const struct filter *f);
int  lct_filter_match_message(const struct filter *f, const struct nlmsghdr *nlh);

/* ---- change.c: what update changes ---- */
struct changes {
	int has_mark, has_timeout, has_status, has_labels, has_state;
	uint32_t mark, mark_mask, timeout, status;
	uint8_t state;                        /* a TCP state (the flows are TCP's) */
	uint32_t labels[4], labels_mask[4];   /* 128 label bits, as the kernel lays them */
};
void lct_changes_parse(lua_State *L, int idx, struct changes *c);
void lct_changes_put(const struct changes *c, const struct nf_conntrack *old, struct nlmsghdr *nlh);
int  lct_changes_needed(const struct changes *c, const struct nf_conntrack *ct);
void lct_changes_check_state(lua_State *L, const struct changes *c, int is_tcp);   /* raises */

/* ---- flow_json.c: a parsed flow as the JSON object json.c writes ---- */
void lct_push_json(lua_State *L, const struct nf_conntrack *ct);

/* ---- flow.c ---- */
/* A flow's nf_conntrack lives inside the userdata (so the collector counts
 * its size) unless it owns heap memory of its own (labels, security
 * context, helper data): then the flow holds the library's allocation. */
struct flow {
	struct nf_conntrack *ct;   /* NULL only while being built */
	int embedded;              /* ct points into this userdata */
	uint8_t type;              /* NFCT_T_NEW/UPDATE/DESTROY for an event, else NFCT_T_UNKNOWN */
	uint32_t portid;           /* an event caused from user space: the sender's port id */
	uint16_t raw;              /* ct NULL: the bytes of the checked message it holds instead, parsed when read */
};
/* The flow's nf_conntrack (or the message it holds instead) follows it. */
#define LCT_FLOW_HEADER ((sizeof(struct flow) + 15) & ~(size_t)15)
struct flow *lct_flow_new(lua_State *L);  /* pushes an empty flow */
struct format {                  /* conntrack's -o, for nfct_snprintf */
	unsigned int type, flags;
	int labels;
	int json;                    /* a JSON object instead (flow_json.c) */
};
void lct_check_format(lua_State *L, int idx, struct format *fmt);
int  lct_push_line(lua_State *L, const struct nf_conntrack *ct, unsigned int ptype, uint32_t portid,
                   const struct format *fmt);   /* 0, or -1: cannot be printed */
/* NULL (nothing pushed) if the scratch was freed meanwhile, see flow.c */
struct flow *lct_flow_adopt(lua_State *L, struct nf_conntrack **scratch);
struct flow *lct_flow_adopt_mt(lua_State *L, struct nf_conntrack **scratch, int mt);
/* NULL (nothing pushed) if the message, indexed (msg_index_top), cannot wait */
struct flow *lct_flow_push_unparsed(lua_State *L, const struct nlmsghdr *nlh, const struct nlattr *const *tb, int mt);
int  lct_scratch_ready(struct nf_conntrack **scratch);

/* ---- flow_raw.c: a dump's flow held as its message until read ---- */
#define LCT_FLOW_RAW_MAX 512       /* the largest message held */
size_t lct_flow_raw_room(void);                                  /* the longest message a flow holds */
void lct_flow_raw_hold(struct flow *fl, size_t len);              /* it holds one now */
int  lct_flow_parse_raw(struct flow *fl);                        /* 0, or -1: malformed */
int  lct_flow_raw_field(lua_State *L, struct flow *fl, int field);   /* 1 pushed, 0: parse it */
struct nf_conntrack *lct_check_flow(lua_State *L, int idx);
struct flow *lct_to_flow(lua_State *L, int idx);   /* the flow at idx, or NULL */
void lct_flow_open(lua_State *L, int module);
int  lct_parse(lua_State *L);

/* ---- expect.c: expectations, their fields and filters ---- */
#define LCT_EXPECT "conntrack.expectation"
#define LCT_XDUMP  "conntrack.expect_dump"
struct expect {
	struct nf_expect *exp;
	uint32_t id;               /* the kernel's id, which the library does not keep */
	int has_id;
	uint8_t type;              /* NFCT_T_NEW/DESTROY for an event, else NFCT_T_UNKNOWN */
};
struct xterm {
	int field;
	uint64_t value;
	struct addr addr;
	char str[32];
};
#define LCT_MAX_XTERMS 32
struct xfilter {
	int nterms;
	struct xterm terms[LCT_MAX_XTERMS];
	uint8_t family;            /* AF_UNSPEC unless the filter pins one */
	int has_where;
};
struct expect *lct_expect_new(lua_State *L);                  /* pushes an empty one */
struct expect *lct_expect_push(lua_State *L, const struct nlmsghdr *nlh, uint8_t type);
int  lct_expect_parse(const struct nlmsghdr *nlh, struct expect *x);   /* no Lua: 0, or -1 */
struct expect *lct_to_expect(lua_State *L, int idx);
struct expect *lct_check_expect(lua_State *L, int idx);
void lct_expect_push_line(lua_State *L, const struct expect *x, const struct format *fmt);
void lct_expect_build(lua_State *L, int idx, struct expect *x, int create);
uint8_t lct_expect_family(const struct expect *x);
void lct_xfilter_parse(lua_State *L, int idx, struct xfilter *f);
int  lct_xfilter_match(const struct xfilter *f, const struct expect *x);
void lct_expect_open(lua_State *L, int module);

/* ---- validate.c: a message checked against the parser's layout, no Lua ---- */
int  msg_check(const struct nlmsghdr *nlh);      /* family and every attribute: 0, or -1 */
int  msg_check_index(const struct nlmsghdr *nlh, const struct nlattr **tb, int tb_max);   /* and its attributes */
int  msg_index_top(const struct nlmsghdr *nlh, const struct nlattr **tb, int tb_max);   /* top level only */
int  msg_validate(const struct nlmsghdr *nlh);
int  msg_check_expect(const struct nlmsghdr *nlh);   /* an expectation's message: 0, or -1 */
int  msg_event_time(const struct nlmsghdr *nlh, double *t);   /* the kernel's time of an event: 1, or 0 */
void msg_attrs_of(const void *payload, int len, const struct nlattr **tb, int max);
#define MSG_PAYLOAD(attr) ((const uint8_t *)(attr) + MNL_ATTR_HDRLEN)
#define MSG_PAYLOAD_LEN(attr) ((int)(attr)->nla_len - (int)MNL_ATTR_HDRLEN)
/* Big-endian 32- and 64-bit attribute values (validated lengths), as the
 * library reads them: for parse.c and format.c. */
static inline uint32_t msg_be32(const struct nlattr *attr)
{
	uint32_t v;

	memcpy(&v, MSG_PAYLOAD(attr), 4);
	return ntohl(v);
}

static inline uint64_t msg_be64(const struct nlattr *attr)
{
	const uint8_t *b = MSG_PAYLOAD(attr);
	uint64_t v = 0;
	int i;

	for (i = 0; i < 8; i++)
		v = v << 8 | b[i];
	return v;
}

/* ---- format.c: conntrack's line from a validated message, no Lua ---- */
#define MSG_LINE_MAX 1024          /* longer than any line format.c writes */
int  msg_format_line(char *buf, const struct nlmsghdr *nlh, unsigned int ptype, unsigned int flags, int labels);
char *msg_addr_text(char *out, int family, const void *addr);   /* out: INET6_ADDRSTRLEN bytes */

/* ---- view.c: a validated message's fields, found once, no Lua ---- */
struct msg_tuple {
	const struct nlattr *src, *dst, *sport, *dport, *proto, *zone;
	const struct nlattr *icmp[3];     /* type, code, id (of ICMP or ICMPv6) */
};
struct msg_view {
	const struct nlattr *tb[CTA_LABELS + 1];   /* the top level's attributes, first */
	uint8_t family, proto;
	struct msg_tuple orig, reply;
	const struct nlattr *state, *vtag[2];   /* state: of the flow's own protocol */
	const struct nlattr *counters[2][2];    /* [orig, reply][packets, bytes] */
	const struct nlattr *start, *stop;
};
/* The parts of a view beside the original tuple, the counters and the
 * attributes of the message's top level. */
enum view_part { VIEW_REPLY = 1, VIEW_PROTOINFO = 2, VIEW_TIMESTAMP = 4, VIEW_ALL = 7 };
int  msg_view(const struct nlmsghdr *nlh, struct msg_view *v);   /* 0, or -1: the library's */
int  msg_view_indexed(const struct nlmsghdr *nlh, struct msg_view *v, unsigned int parts);   /* v->tb: msg_check_index's */
int  msg_view_nat(const struct msg_view *v, int dnat);           /* 0, 1, or -1: unknown */
uint16_t msg_be16(const struct nlattr *attr);
uint64_t msg_counter(const struct nlattr *attr);                 /* a 32- or 64-bit counter */

/* ---- json.c: a flow's JSON object from a validated message, no Lua ---- */
#define MSG_JSON_MAX 2048          /* longer than any object json.c writes */
int  msg_format_json(char *buf, const struct nlmsghdr *nlh);   /* its length, or -1: flow_json.c's */
char *msg_json_uint(char *p, uint64_t v);
char *msg_json_string(char *p, const char *s, size_t len);      /* p: 6 * len + 2 bytes */
char *msg_json_status(char *p, uint32_t status);
char *msg_json_key(char *p, const char *name, int *members);

/* ---- parse.c: a message into an nf_conntrack, no Lua ---- */
int  msg_parse(const struct nlmsghdr *nlh, struct nf_conntrack *ct);       /* checked, then parsed: 0, or -1 */
int  msg_parse_fast(const struct nlmsghdr *nlh, struct nf_conntrack *ct);  /* validated: 0, or 1: the library's */
size_t msg_ct_size(void);                        /* sizeof(struct nf_conntrack) */

/* ---- handle.c: the handle and what operations do with it ----
 * Lua code can run in the middle of any operation (a predicate, a
 * metamethod of an argument table, an error object's __tostring, a
 * finalizer the collector calls at an allocation) and close the handle.
 * So its socket and its namespace are reached only through these calls,
 * made at the moment of use with no Lua code after them: a closed handle
 * raises "attempt to use a closed handle" there, and never falls back to
 * the process's own namespace. (The struct is private to handle.c.) */
struct handle;
struct table_stats { uint32_t entries, max; int has_max; };
struct handle *lct_check_handle(lua_State *L, int idx);
int  lct_handle_is_open(lua_State *L, int idx);          /* a handle, not closed */
int  lct_handle_netns(lua_State *L, struct handle *h);    /* for a new socket; -1: the caller's own */
char *lct_handle_buf(struct handle *h);   /* LCT_RECV_SIZE bytes, for one request and its reply */
int  lct_handle_request(lua_State *L, struct handle *h, struct nlmsghdr *nlh,
                        int (*cb)(const struct nlmsghdr *, void *), void *data);   /* 0, -errno */
void lct_handle_expect_batches(lua_State *L, struct handle *h);
int  lct_handle_batch(lua_State *L, struct handle *h, struct nl_batch *b, struct nl_acks *acks);
int  lct_table_stats(lua_State *L, struct handle *h, struct table_stats *t);
int  lct_request_dump(struct nl *nl, struct nl_reply *r, int netns_fd, char *buf, uint16_t type,
                      const struct filter *f);            /* no Lua: 0, -errno */
const char *lct_strerror(int err);
int  lct_fail(lua_State *L, const char *what, int err);  /* pushes nil, "what: ...", errno */
int  lct_fail_after(lua_State *L, const char *what, int err, unsigned long done);
int  lct_raise(lua_State *L, int *last, const char *what, int err);   /* keeps err in *last, raises */
int  lct_push_last_error(lua_State *L, const char *what, int err);    /* nil, or message, errno */
int  lct_open(lua_State *L);
void lct_handle_open(lua_State *L, int module);

/* ---- conntrack.c ---- */
/* The module's one exported symbol: the build hides all others (-fvisibility=hidden). */
__attribute__((visibility("default"))) int luaopen_conntrack(lua_State *L);

/* ---- dump.c / ops.c ---- */
void lct_dump_open(lua_State *L);
int  lct_dump(lua_State *L);
void lct_ops_register(lua_State *L);

/* ---- wait.c: the waits of next and each ---- */
struct pollfd;
double lct_now(clockid_t clock);
double lct_check_timeout(lua_State *L, int idx);    /* seconds; -1 for ever */
int  lct_wait_readable(lua_State *L, struct pollfd *p, int n, double timeout, double deadline);   /* 1, 0, -errno */

/* ---- signals.c: signals read from a signalfd ---- */
struct sigmask;
struct sigwatch {
	int fd;                    /* -1: closed */
	sigset_t set;
	struct sigmask *mask;      /* the Lua state's count of watches per signal */
};
void lct_signals_open(lua_State *L, int module);
void lct_signals_parse(lua_State *L, int idx, const char *key, sigset_t *set);   /* raises */
int  lct_sigwatch_open(lua_State *L, struct sigwatch *w, const sigset_t *set);  /* 0, -errno */
void lct_sigwatch_close(struct sigwatch *w);
int  lct_sigwatch_read(struct sigwatch *w, uint32_t *pid);   /* signal number, 0 if none, -errno */
const char *lct_signal_name(int signo);

/* ---- group_keys.c: the keys ct:aggregate groups by ---- */
#define LCT_MAX_KEYS 16
#define LCT_KEY_FN_BYTES 62        /* the longest string a key function may return */
/* One part of a group's key: a field, or (field -1) the key function. Each
 * is a fixed slot of the key: a presence byte, then its value. */
struct key_part {
	int field;
	uint8_t plen4, plen6;          /* addresses: the prefix lengths kept */
	size_t off, size;
};
struct keys {
	int nparts;
	struct key_part parts[LCT_MAX_KEYS];
	size_t len;                    /* bytes of a key */
};
void lct_keys_check(lua_State *L, int idx, struct keys *k);    /* opts.by; pushes the key function or nil */
void lct_key_from_flow(const struct key_part *p, const struct nf_conntrack *ct, unsigned char *slot);
void lct_key_from_view(const struct key_part *p, const struct msg_view *v, unsigned char *slot);
unsigned int lct_keys_view_parts(const struct keys *k);          /* enum view_part: what the keys read */
int  lct_key_from_value(lua_State *L, unsigned char *slot);    /* the value at the top: 1, 0 if no key */
int  lct_key_push(lua_State *L, const struct key_part *p, const unsigned char *slot);   /* 0: absent */
int  lct_field_push_view(lua_State *L, const struct msg_view *v, int field);   /* 0: not in a view */

/* ---- groups.c: the table of groups, no Lua state ---- */
struct sums {                      /* [0] original, [1] reply direction */
	uint64_t flows, packets[2], bytes[2];
};
struct group {                     /* a record: its sums, then its key (the table's key_len bytes) */
	struct sums sums;
	unsigned char key[];
};
struct slot {
	uint32_t hash, rec;            /* rec 0: empty */
};
#define GROUPS_FIRST_BITS 5
#define GROUPS_FIRST (1u << GROUPS_FIRST_BITS)   /* records in the first chunk */
#define GROUPS_CHUNKS 26           /* chunks: room for more than the largest max_groups, 2^30 */
struct groups {
	struct slot *index;            /* at most half full */
	unsigned char *chunks[GROUPS_CHUNKS];   /* the records, in the order the groups came */
	size_t nchunks;
	lua_Alloc alloc;
	void *ud;
	size_t cap, room, count, max, record;   /* index slots, records room, groups, the cap, bytes a record */
	size_t key_len;
	int counted;                   /* a flow had counters */
	struct sums other;             /* the flows of groups past the cap */
	uint64_t total;
};
enum sum { SUM_FLOWS, SUM_PACKETS, SUM_BYTES, SUM_ORIG_PACKETS, SUM_ORIG_BYTES, SUM_REPLY_PACKETS,
           SUM_REPLY_BYTES };
int  lct_groups_init(struct groups *t, lua_State *L, size_t key_len, size_t max);   /* 0, -1: no memory */
struct sums *lct_groups_find(struct groups *t, const unsigned char *key);   /* NULL: no memory */
uint32_t lct_groups_hash(const struct groups *t, const unsigned char *key);
void lct_groups_prefetch(const struct groups *t, uint32_t hash, int stage);   /* stage 0, then 1 */
struct sums *lct_groups_find_hashed(struct groups *t, const unsigned char *key, uint32_t hash);
struct ranked_group {              /* a group and its sort's sum, while the top is chosen */
	uint64_t rank;
	const struct group *g;
};
size_t lct_groups_top(const struct groups *t, int sort, struct ranked_group *top, size_t n);
void lct_groups_free(struct groups *t);

/* ---- aggregate.c: flows grouped by keys, summed while the dump streams ---- */
void lct_aggregate_open(lua_State *L);
int  lct_aggregate(lua_State *L);

/* ---- events.c ---- */
void lct_events_open(lua_State *L);
int  lct_events(lua_State *L);

/* ---- expect_ops.c: the expectation table's operations on a handle ---- */
void lct_expect_ops_open(lua_State *L);     /* the dump's metatable */
void lct_expect_ops_register(lua_State *L); /* the handle's methods, at the top of the stack */
int  lct_expect_dump(lua_State *L);

/* ---- sweep.c: delete and update by filter ---- */
void lct_sweep_open(lua_State *L);
int  lct_sweep_delete(lua_State *L);
int  lct_sweep_update(lua_State *L);

#endif
