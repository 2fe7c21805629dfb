/* Address classes from the IANA IPv4 and IPv6 special-purpose address
   registries (RFC 6890 and its updates). The guard is a deny list of
   everything non-global: an endpoint on a global unicast address is
   allowed, the rest only when the admin says the endpoint is internal
   (allow_private), and the classes that reach the local host or nowhere
   (unspecified, 0/8, multicast, broadcast, 240/4) never. */

#include "pop3-retention-config.h"
#include "webhook-ssrf.h"

#include <netinet/in.h>
#include <stdint.h>
#include <string.h>

struct v4_range {
	uint32_t net;
	unsigned int prefix;
	enum webhook_ssrf_class cls;
};

/* Checked in order: the first match wins. */
static const struct v4_range v4_ranges[] = {
	{ 0x00000000, 32, WEBHOOK_SSRF_UNSPECIFIED },
	{ 0x00000000, 8, WEBHOOK_SSRF_THIS_NETWORK },
	{ 0x7f000000, 8, WEBHOOK_SSRF_LOOPBACK },
	{ 0x0a000000, 8, WEBHOOK_SSRF_PRIVATE },
	{ 0xac100000, 12, WEBHOOK_SSRF_PRIVATE },
	{ 0xc0a80000, 16, WEBHOOK_SSRF_PRIVATE },
	{ 0xa9fe0000, 16, WEBHOOK_SSRF_LINK_LOCAL },
	{ 0x64400000, 10, WEBHOOK_SSRF_SHARED },
	{ 0xc0000000, 24, WEBHOOK_SSRF_SPECIAL },	/* IETF assignments */
	{ 0xc0000200, 24, WEBHOOK_SSRF_SPECIAL },	/* TEST-NET-1 */
	{ 0xc6336400, 24, WEBHOOK_SSRF_SPECIAL },	/* TEST-NET-2 */
	{ 0xcb007100, 24, WEBHOOK_SSRF_SPECIAL },	/* TEST-NET-3 */
	{ 0xc6120000, 15, WEBHOOK_SSRF_SPECIAL },	/* benchmarking */
	{ 0xc0586300, 24, WEBHOOK_SSRF_SPECIAL },	/* 6to4 relay anycast */
	{ 0xe0000000, 4, WEBHOOK_SSRF_MULTICAST },
	{ 0xffffffff, 32, WEBHOOK_SSRF_BROADCAST },
	{ 0xf0000000, 4, WEBHOOK_SSRF_RESERVED },
};

struct v6_range {
	uint8_t net[16];
	unsigned int prefix;
	enum webhook_ssrf_class cls;
};

/* The ranges that embed an IPv4 address are handled in code before
   these. */
static const struct v6_range v6_ranges[] = {
	{ { 0x00, 0x64, 0xff, 0x9b, 0x00, 0x01 }, 48, WEBHOOK_SSRF_TUNNEL },
	{ { 0x01, 0x00 }, 64, WEBHOOK_SSRF_SPECIAL },	/* discard-only */
	{ { 0x20, 0x01, 0x0d, 0xb8 }, 32, WEBHOOK_SSRF_SPECIAL },
	{ { 0x3f, 0xff }, 20, WEBHOOK_SSRF_SPECIAL },	/* RFC 9637 */
	{ { 0x20, 0x01, 0x00, 0x02, 0x00, 0x00 }, 48, WEBHOOK_SSRF_SPECIAL },
	{ { 0x20, 0x01, 0x00, 0x10 }, 28, WEBHOOK_SSRF_SPECIAL }, /* ORCHID */
	{ { 0x20, 0x01, 0x00, 0x20 }, 28, WEBHOOK_SSRF_SPECIAL }, /* ORCHIDv2 */
	{ { 0x20, 0x01, 0x00, 0x00 }, 32, WEBHOOK_SSRF_TUNNEL },  /* Teredo */
	{ { 0xfe, 0x80 }, 10, WEBHOOK_SSRF_LINK_LOCAL },
	{ { 0xfe, 0xc0 }, 10, WEBHOOK_SSRF_UNIQUE_LOCAL },	/* site-local */
	{ { 0xfc, 0x00 }, 7, WEBHOOK_SSRF_UNIQUE_LOCAL },
	{ { 0xff, 0x00 }, 8, WEBHOOK_SSRF_MULTICAST },
};

static enum webhook_ssrf_class classify_v4(uint32_t addr)
{
	unsigned int i;
	uint32_t mask;

	for (i = 0; i < sizeof(v4_ranges) / sizeof(v4_ranges[0]); i++) {
		mask = v4_ranges[i].prefix == 0 ? 0 :
			0xffffffffU << (32 - v4_ranges[i].prefix);
		if ((addr & mask) == v4_ranges[i].net)
			return v4_ranges[i].cls;
	}
	return WEBHOOK_SSRF_PUBLIC;
}

static uint32_t v4_at(const uint8_t *p)
{
	return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) |
		((uint32_t)p[2] << 8) | (uint32_t)p[3];
}

static bool prefix_matches(const uint8_t *addr, const uint8_t *net,
			   unsigned int prefix)
{
	unsigned int bytes = prefix / 8, bits = prefix % 8;
	uint8_t mask;

	if (memcmp(addr, net, bytes) != 0)
		return false;
	if (bits == 0)
		return true;
	mask = (uint8_t)(0xff << (8 - bits));
	return (addr[bytes] & mask) == (net[bytes] & mask);
}

static bool all_zero(const uint8_t *p, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++) {
		if (p[i] != 0)
			return false;
	}
	return true;
}

static enum webhook_ssrf_class classify_v6(const uint8_t a[16])
{
	static const uint8_t mapped[12] = {
		0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff
	};
	static const uint8_t translated[12] = {
		0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0
	};
	static const uint8_t nat64[12] = {
		0x00, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0
	};
	unsigned int i;

	if (all_zero(a, 16))
		return WEBHOOK_SSRF_UNSPECIFIED;
	if (all_zero(a, 15) && a[15] == 1)
		return WEBHOOK_SSRF_LOOPBACK;
	/* ::ffff:a.b.c.d, ::ffff:0:a.b.c.d (SIIT), ::a.b.c.d (the
	   deprecated IPv4-compatible form), 64:ff9b::a.b.c.d (NAT64): the
	   packet ends up at the IPv4 address. */
	if (memcmp(a, mapped, 12) == 0 || memcmp(a, translated, 12) == 0 ||
	    all_zero(a, 12) || memcmp(a, nat64, 12) == 0)
		return classify_v4(v4_at(a + 12));
	/* 6to4: 2002:aabb:ccdd::/48 */
	if (a[0] == 0x20 && a[1] == 0x02)
		return classify_v4(v4_at(a + 2));
	for (i = 0; i < sizeof(v6_ranges) / sizeof(v6_ranges[0]); i++) {
		if (prefix_matches(a, v6_ranges[i].net, v6_ranges[i].prefix))
			return v6_ranges[i].cls;
	}
	/* Only 2000::/3 is allocated for global unicast. */
	if ((a[0] & 0xe0) != 0x20)
		return WEBHOOK_SSRF_RESERVED;
	return WEBHOOK_SSRF_PUBLIC;
}

enum webhook_ssrf_class webhook_ssrf_classify(const struct sockaddr *sa,
					      socklen_t len)
{
	struct sockaddr_in sin;
	struct sockaddr_in6 sin6;

	if (sa == NULL || len < (socklen_t)sizeof(sa->sa_family))
		return WEBHOOK_SSRF_UNSUPPORTED;
	/* Copies: sa may not be aligned for the concrete type. */
	switch (sa->sa_family) {
	case AF_INET:
		if (len < (socklen_t)sizeof(sin))
			return WEBHOOK_SSRF_UNSUPPORTED;
		memcpy(&sin, sa, sizeof(sin));
		return classify_v4(ntohl(sin.sin_addr.s_addr));
	case AF_INET6:
		if (len < (socklen_t)sizeof(sin6))
			return WEBHOOK_SSRF_UNSUPPORTED;
		memcpy(&sin6, sa, sizeof(sin6));
		return classify_v6(sin6.sin6_addr.s6_addr);
	default:
		return WEBHOOK_SSRF_UNSUPPORTED;
	}
}

bool webhook_ssrf_class_allowed(enum webhook_ssrf_class cls,
				bool allow_private)
{
	switch (cls) {
	case WEBHOOK_SSRF_PUBLIC:
		return true;
	case WEBHOOK_SSRF_LOOPBACK:
	case WEBHOOK_SSRF_PRIVATE:
	case WEBHOOK_SSRF_LINK_LOCAL:
	case WEBHOOK_SSRF_SHARED:
	case WEBHOOK_SSRF_UNIQUE_LOCAL:
	case WEBHOOK_SSRF_SPECIAL:
	case WEBHOOK_SSRF_TUNNEL:
		return allow_private;
	case WEBHOOK_SSRF_UNSPECIFIED:
	case WEBHOOK_SSRF_THIS_NETWORK:
	case WEBHOOK_SSRF_MULTICAST:
	case WEBHOOK_SSRF_BROADCAST:
	case WEBHOOK_SSRF_RESERVED:
	case WEBHOOK_SSRF_UNSUPPORTED:
		break;
	}
	return false;
}

bool webhook_ssrf_allowed(const struct sockaddr *sa, socklen_t len,
			  bool allow_private,
			  enum webhook_ssrf_class *class_r)
{
	enum webhook_ssrf_class cls = webhook_ssrf_classify(sa, len);

	if (class_r != NULL)
		*class_r = cls;
	return webhook_ssrf_class_allowed(cls, allow_private);
}

const char *webhook_ssrf_class_name(enum webhook_ssrf_class cls)
{
	switch (cls) {
	case WEBHOOK_SSRF_PUBLIC:
		return "public";
	case WEBHOOK_SSRF_LOOPBACK:
		return "loopback";
	case WEBHOOK_SSRF_PRIVATE:
		return "private";
	case WEBHOOK_SSRF_LINK_LOCAL:
		return "link-local";
	case WEBHOOK_SSRF_SHARED:
		return "shared address space";
	case WEBHOOK_SSRF_UNIQUE_LOCAL:
		return "unique local";
	case WEBHOOK_SSRF_SPECIAL:
		return "special-purpose";
	case WEBHOOK_SSRF_TUNNEL:
		return "tunnel";
	case WEBHOOK_SSRF_UNSPECIFIED:
		return "unspecified";
	case WEBHOOK_SSRF_THIS_NETWORK:
		return "this network";
	case WEBHOOK_SSRF_MULTICAST:
		return "multicast";
	case WEBHOOK_SSRF_BROADCAST:
		return "broadcast";
	case WEBHOOK_SSRF_RESERVED:
		return "reserved";
	case WEBHOOK_SSRF_UNSUPPORTED:
		break;
	}
	return "unsupported address family";
}
