/*
 * receive.c: one datagram of a netlink socket, from the kernel only, for the
 * replies nl.c walks and the datagrams ahead.c receives in its thread.
 */
#include <errno.h>
#include <sys/socket.h>
#include <linux/netlink.h>

#include "lct.h"

/* One datagram into buf, from the kernel only (a user-space sender could
 * forge replies or events). flags: 0, or MSG_DONTWAIT. Its length; 0 if none
 * waits (MSG_DONTWAIT); -EMSGSIZE if it did not fit; -errno. */
ssize_t nl_receive(struct nl *nl, char *buf, size_t cap, int flags)
{
	struct sockaddr_nl addr;
	struct iovec iov = { .iov_base = buf, .iov_len = cap };
	/* by name: musl's msghdr has padding members between these */
	struct msghdr msg = { .msg_name = &addr, .msg_namelen = sizeof(addr), .msg_iov = &iov, .msg_iovlen = 1 };
	ssize_t n;

	if (nl->sock == NULL)
		return -EBADF;
	for (;;) {
		msg.msg_namelen = sizeof(addr);
		n = recvmsg(mnl_socket_get_fd(nl->sock), &msg, flags);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -errno;
		}
		if (msg.msg_flags & MSG_TRUNC)
			return -EMSGSIZE;
		if (addr.nl_pid == 0)
			return n;
	}
}
