#ifndef WEBHOOK_SSRF_H
#define WEBHOOK_SSRF_H

/* Server-side request forgery guard: decides whether the delivery engine
   may connect to a resolved address. It is asked at connect time (from
   libcurl's open-socket callback) about the address actually used, so a
   host name that resolves, or re-resolves (DNS rebinding), to an internal
   address is refused as well. Pure functions, no I/O. */

#include <stdbool.h>
#include <sys/socket.h>

enum webhook_ssrf_class {
	/* a global unicast address: always allowed */
	WEBHOOK_SSRF_PUBLIC = 0,

	/* Private classes: refused unless allow_private. */
	WEBHOOK_SSRF_LOOPBACK,		/* 127/8, ::1 */
	/* RFC 1918: 10/8, 172.16/12, 192.168/16 */
	WEBHOOK_SSRF_PRIVATE,
	/* 169.254/16 (cloud metadata at 169.254.169.254), fe80::/10 */
	WEBHOOK_SSRF_LINK_LOCAL,
	WEBHOOK_SSRF_SHARED,		/* CGNAT 100.64/10 */
	/* fc00::/7, and the deprecated site-local fec0::/10 */
	WEBHOOK_SSRF_UNIQUE_LOCAL,
	/* 192.0.2/24, 198.51.100/24, 203.0.113/24, 2001:db8::/32, 3fff::/20;
	   benchmarking 198.18/15, 2001:2::/48; IETF 192.0.0/24; discard
	   100::/64; 6to4 relay 192.88.99/24 */
	WEBHOOK_SSRF_SPECIAL,
	/* IPv6 tunnels that can reach an arbitrary IPv4 address whose
	   embedding cannot be checked: Teredo 2001::/32, local-use NAT64
	   64:ff9b:1::/48 */
	WEBHOOK_SSRF_TUNNEL,

	/* Never allowed, whatever allow_private says: no legitimate
	   endpoint lives there, and several reach the local host. */
	WEBHOOK_SSRF_UNSPECIFIED,	/* 0.0.0.0, :: */
	WEBHOOK_SSRF_THIS_NETWORK,	/* 0/8 (Linux connects it locally) */
	WEBHOOK_SSRF_MULTICAST,		/* 224/4, ff00::/8 */
	WEBHOOK_SSRF_BROADCAST,		/* 255.255.255.255 */
	WEBHOOK_SSRF_RESERVED,		/* 240/4 */
	WEBHOOK_SSRF_UNSUPPORTED,	/* not AF_INET/AF_INET6, or truncated */
};

/* Classify the address in sa (AF_INET or AF_INET6; len is the size of
   the storage sa points to). IPv6 addresses that embed an IPv4 address
   (IPv4-mapped ::ffff:0:0/96, IPv4-compatible ::/96, the NAT64
   well-known prefix 64:ff9b::/96, 6to4 2002::/16) get the class of the
   embedded address. Never fails: anything it cannot read is
   WEBHOOK_SSRF_UNSUPPORTED. */
enum webhook_ssrf_class webhook_ssrf_classify(const struct sockaddr *sa,
					      socklen_t len);

/* True if the delivery engine may connect to an address of this class:
   PUBLIC always, the private classes only with allow_private, the
   others never. */
bool webhook_ssrf_class_allowed(enum webhook_ssrf_class cls,
				bool allow_private);

/* webhook_ssrf_class_allowed(webhook_ssrf_classify(sa, len), ...), with
   the class returned in class_r (may be NULL) for the log line. */
bool webhook_ssrf_allowed(const struct sockaddr *sa, socklen_t len,
			  bool allow_private,
			  enum webhook_ssrf_class *class_r);

/* A short static name for logs ("loopback", "link-local", ...). */
const char *webhook_ssrf_class_name(enum webhook_ssrf_class cls);

#endif
