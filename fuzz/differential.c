/*
 * fuzz/differential.c: libFuzzer target holding src/parse.c and src/format.c
 * to the library they stand in for. For every message that passes the
 * validation: the flow parse.c builds must be byte for byte the one
 * nfct_payload_parse builds, and the line format.c writes must be the one
 * nfct_snprintf writes, wherever parse.c and format.c do not decline; and
 * the JSON object json.c writes from the message must be the one flow_json.c
 * writes from the library's flow, wherever json.c does not decline.
 * The input is a whole netlink message, as for fuzz/parse.c (same corpus);
 * its sequence number picks the output flags and the event type.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/netfilter/nfnetlink.h>
#include "../src/lct.h"
#include <lualib.h>

#pragma GCC diagnostic ignored "-Wdeprecated-declarations"   /* nfct_maxsize */

static const unsigned int types[] = { NFCT_T_UNKNOWN, NFCT_T_NEW, NFCT_T_UPDATE, NFCT_T_DESTROY };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char buf[8192] __attribute__((aligned(8)));
	struct nlmsghdr *nlh = (struct nlmsghdr *)buf;
	size_t head = MNL_NLMSG_HDRLEN + MNL_ALIGN(sizeof(struct nfgenmsg));
	struct nf_conntrack *ours, *theirs;
	char line[MSG_LINE_MAX], reference[4096], json[MSG_JSON_MAX];
	unsigned int flags, type;
	int fast, lib, n;

	if (size < head || size > sizeof(buf))
		return 0;
	memcpy(buf, data, size);
	nlh->nlmsg_len = (uint32_t)size;   /* the message is the whole input */
	if (msg_check(nlh) < 0)
		return 0;
	flags = (nlh->nlmsg_seq & 1 ? NFCT_OF_SHOW_LAYER3 : 0) | (nlh->nlmsg_seq & 2 ? NFCT_OF_ID : 0);
	type = types[(nlh->nlmsg_seq >> 2) & 3];

	ours = nfct_new();
	theirs = nfct_new();
	if (ours == NULL || theirs == NULL)
		abort();
	fast = msg_parse_fast(nlh, ours);
	lib = nfct_payload_parse(buf + head, size - head,
	                         ((struct nfgenmsg *)mnl_nlmsg_get_payload(nlh))->nfgen_family, theirs);
	if (fast == 0 && (lib < 0 || memcmp(ours, theirs, nfct_maxsize()) != 0))
		abort();   /* parse.c built another flow than the library */
	if (lib >= 0 && (n = msg_format_json(json, nlh)) >= 0) {
		static lua_State *L;
		size_t len;
		const char *ref;
		if (L == NULL && (L = luaL_newstate()) == NULL)
			abort();
		lct_push_json(L, theirs);
		ref = lua_tolstring(L, -1, &len);
		if ((size_t)n != len || memcmp(json, ref, len) != 0) {
			fprintf(stderr, "json.c:      %s\nflow_json.c: %s\n", json, ref);
			abort();
		}
		lua_settop(L, 0);
	}
	if (lib >= 0 && (n = msg_format_line(line, nlh, type, flags, 0)) >= 0) {
		int m = nfct_snprintf(reference, sizeof(reference), theirs, type, NFCT_O_DEFAULT, flags);
		/* the delta-time of a timestamp may tick between the two */
		if ((n != m || strcmp(line, reference) != 0) && strstr(line, "delta-time") == NULL) {
			fprintf(stderr, "format.c: %s\nlibrary:  %s\n", line, reference);
			abort();
		}
	}
	nfct_destroy(ours);
	nfct_destroy(theirs);
	return 0;
}
