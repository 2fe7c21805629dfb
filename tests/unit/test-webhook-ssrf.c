/* The SSRF guard against the IANA special-purpose registries: every
   class on both sides of its boundaries, IPv6 forms that embed an IPv4
   address, and allow_private (which never opens the classes that reach
   the local host or nowhere). One cmocka test per table row. */

#include "pop3-retention-config.h"
#include "webhook-ssrf.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "test-table.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>


struct ssrf_case {
	const char *name;
	const char *addr;
	enum webhook_ssrf_class cls;
	bool allowed;		/* allow_private = no */
	bool allowed_private;	/* allow_private = yes */
};

#define PUBLIC(addr) { addr, addr, WEBHOOK_SSRF_PUBLIC, true, true }
#define PRIV(addr, cls) { addr, addr, cls, false, true }
#define NEVER(addr, cls) { addr, addr, cls, false, false }

static const struct ssrf_case ssrf_cases[] = {
	/* IPv4 */
	PUBLIC("8.8.8.8"),
	PUBLIC("1.1.1.1"),
	PUBLIC("223.255.255.255"),
	NEVER("0.0.0.0", WEBHOOK_SSRF_UNSPECIFIED),
	NEVER("0.1.2.3", WEBHOOK_SSRF_THIS_NETWORK),
	NEVER("0.255.255.255", WEBHOOK_SSRF_THIS_NETWORK),
	PUBLIC("1.0.0.0"),
	PRIV("127.0.0.1", WEBHOOK_SSRF_LOOPBACK),
	PRIV("127.255.255.254", WEBHOOK_SSRF_LOOPBACK),
	PUBLIC("126.255.255.255"),
	PUBLIC("128.0.0.0"),
	PRIV("10.0.0.1", WEBHOOK_SSRF_PRIVATE),
	PRIV("10.255.255.255", WEBHOOK_SSRF_PRIVATE),
	PUBLIC("11.0.0.0"),
	PRIV("172.16.0.1", WEBHOOK_SSRF_PRIVATE),
	PRIV("172.31.255.255", WEBHOOK_SSRF_PRIVATE),
	PUBLIC("172.15.255.255"),
	PUBLIC("172.32.0.0"),
	PRIV("192.168.1.1", WEBHOOK_SSRF_PRIVATE),
	PUBLIC("192.169.0.1"),
	PRIV("169.254.169.254", WEBHOOK_SSRF_LINK_LOCAL),
	PRIV("169.254.0.1", WEBHOOK_SSRF_LINK_LOCAL),
	PUBLIC("169.255.0.1"),
	PRIV("100.64.0.1", WEBHOOK_SSRF_SHARED),
	PRIV("100.127.255.255", WEBHOOK_SSRF_SHARED),
	PUBLIC("100.63.255.255"),
	PUBLIC("100.128.0.0"),
	PRIV("192.0.0.8", WEBHOOK_SSRF_SPECIAL),
	PRIV("192.0.2.1", WEBHOOK_SSRF_SPECIAL),
	PRIV("198.51.100.7", WEBHOOK_SSRF_SPECIAL),
	PRIV("203.0.113.9", WEBHOOK_SSRF_SPECIAL),
	PRIV("198.18.0.1", WEBHOOK_SSRF_SPECIAL),
	PRIV("198.19.255.255", WEBHOOK_SSRF_SPECIAL),
	PUBLIC("198.20.0.0"),
	PRIV("192.88.99.1", WEBHOOK_SSRF_SPECIAL),
	NEVER("224.0.0.1", WEBHOOK_SSRF_MULTICAST),
	NEVER("239.255.255.255", WEBHOOK_SSRF_MULTICAST),
	NEVER("240.0.0.1", WEBHOOK_SSRF_RESERVED),
	NEVER("255.255.255.254", WEBHOOK_SSRF_RESERVED),
	NEVER("255.255.255.255", WEBHOOK_SSRF_BROADCAST),

	/* IPv6 */
	PUBLIC("2001:4860:4860::8888"),
	PUBLIC("2606:4700:4700::1111"),
	NEVER("::", WEBHOOK_SSRF_UNSPECIFIED),
	PRIV("::1", WEBHOOK_SSRF_LOOPBACK),
	PRIV("fe80::1", WEBHOOK_SSRF_LINK_LOCAL),
	PRIV("febf:ffff::1", WEBHOOK_SSRF_LINK_LOCAL),
	PRIV("fec0::1", WEBHOOK_SSRF_UNIQUE_LOCAL),
	PRIV("fc00::1", WEBHOOK_SSRF_UNIQUE_LOCAL),
	PRIV("fdff:ffff::1", WEBHOOK_SSRF_UNIQUE_LOCAL),
	NEVER("fbff::1", WEBHOOK_SSRF_RESERVED),
	NEVER("ff02::1", WEBHOOK_SSRF_MULTICAST),
	NEVER("ff05::1:3", WEBHOOK_SSRF_MULTICAST),
	PRIV("2001:db8::1", WEBHOOK_SSRF_SPECIAL),
	PRIV("3fff::1", WEBHOOK_SSRF_SPECIAL),
	PRIV("100::1", WEBHOOK_SSRF_SPECIAL),
	PRIV("2001:2::1", WEBHOOK_SSRF_SPECIAL),
	PRIV("2001:10::1", WEBHOOK_SSRF_SPECIAL),
	PRIV("2001::1", WEBHOOK_SSRF_TUNNEL),
	PRIV("64:ff9b:1::1", WEBHOOK_SSRF_TUNNEL),
	NEVER("4000::1", WEBHOOK_SSRF_RESERVED),
	PUBLIC("3ffe::1"),

	/* IPv4-mapped: the IPv4 address decides */
	PRIV("::ffff:127.0.0.1", WEBHOOK_SSRF_LOOPBACK),
	PRIV("::ffff:10.1.2.3", WEBHOOK_SSRF_PRIVATE),
	PRIV("::ffff:169.254.169.254", WEBHOOK_SSRF_LINK_LOCAL),
	PRIV("::ffff:100.64.1.1", WEBHOOK_SSRF_SHARED),
	NEVER("::ffff:0.0.0.0", WEBHOOK_SSRF_UNSPECIFIED),
	NEVER("::ffff:224.0.0.1", WEBHOOK_SSRF_MULTICAST),
	PUBLIC("::ffff:8.8.8.8"),
	/* SIIT ::ffff:0:0/96 */
	PRIV("::ffff:0:10.0.0.1", WEBHOOK_SSRF_PRIVATE),
	/* IPv4-compatible (deprecated) */
	PRIV("::127.0.0.1", WEBHOOK_SSRF_LOOPBACK),
	PRIV("::10.1.2.3", WEBHOOK_SSRF_PRIVATE),
	PUBLIC("::8.8.8.8"),
	/* NAT64 well-known prefix */
	PRIV("64:ff9b::7f00:1", WEBHOOK_SSRF_LOOPBACK),
	PRIV("64:ff9b::10.0.0.1", WEBHOOK_SSRF_PRIVATE),
	PRIV("64:ff9b::169.254.169.254", WEBHOOK_SSRF_LINK_LOCAL),
	PUBLIC("64:ff9b::8.8.8.8"),
	/* 6to4 */
	PRIV("2002:7f00:1::1", WEBHOOK_SSRF_LOOPBACK),
	PRIV("2002:c0a8:101::1", WEBHOOK_SSRF_PRIVATE),
	PUBLIC("2002:808:808::1"),
};

/* Every failure names the table row. */
static void __attribute__((format(printf, 3, 4)))
case_fail(size_t idx, const char *name, const char *fmt, ...)
{
	char msg[1024];
	va_list args;

	va_start(args, fmt);
	vsnprintf(msg, sizeof(msg), fmt, args);
	va_end(args);
	fail_msg("case %zu (%s): %s", idx, name, msg);
}

/* No casts between sockaddr types: strict aliasing. */
union any_sockaddr {
	struct sockaddr sa;
	struct sockaddr_in sin;
	struct sockaddr_in6 sin6;
	struct sockaddr_un sun;
	struct sockaddr_storage ss;
};

static socklen_t make_sockaddr(size_t idx, const char *name,
			       const char *addr, union any_sockaddr *ss)
{
	struct sockaddr_in sin;
	struct sockaddr_in6 sin6;

	memset(ss, 0, sizeof(*ss));
	if (strchr(addr, ':') == NULL) {
		memset(&sin, 0, sizeof(sin));
		sin.sin_family = AF_INET;
		sin.sin_port = htons(443);
		if (inet_pton(AF_INET, addr, &sin.sin_addr) != 1)
			case_fail(idx, name, "bad IPv4 address in the table");
		ss->sin = sin;
		return sizeof(sin);
	}
	memset(&sin6, 0, sizeof(sin6));
	sin6.sin6_family = AF_INET6;
	sin6.sin6_port = htons(443);
	if (inet_pton(AF_INET6, addr, &sin6.sin6_addr) != 1)
		case_fail(idx, name, "bad IPv6 address in the table");
	ss->sin6 = sin6;
	return sizeof(sin6);
}

static void test_ssrf(void **state)
{
	const struct ssrf_case *c = *state;
	size_t idx = (size_t)(c - ssrf_cases);
	union any_sockaddr ss;
	enum webhook_ssrf_class cls;
	socklen_t len;
	bool allowed;

	len = make_sockaddr(idx, c->name, c->addr, &ss);
	cls = webhook_ssrf_classify(&ss.sa, len);
	if (cls != c->cls)
		case_fail(idx, c->name, "class %s, expected %s",
			  webhook_ssrf_class_name(cls),
			  webhook_ssrf_class_name(c->cls));
	allowed = webhook_ssrf_allowed(&ss.sa, len,
				       false, &cls);
	if (allowed != c->allowed || cls != c->cls)
		case_fail(idx, c->name, "allow_private=no: %s, expected %s",
			  allowed ? "allowed" : "refused",
			  c->allowed ? "allowed" : "refused");
	allowed = webhook_ssrf_allowed(&ss.sa, len,
				       true, NULL);
	if (allowed != c->allowed_private)
		case_fail(idx, c->name, "allow_private=yes: %s, expected %s",
			  allowed ? "allowed" : "refused",
			  c->allowed_private ? "allowed" : "refused");
}

/* Addresses the guard cannot read are refused, never guessed. */
static void test_unsupported(void **state)
{
	union any_sockaddr ss;
	socklen_t len;

	(void)state;
	memset(&ss, 0, sizeof(ss));
	ss.sun.sun_family = AF_UNIX;
	if (webhook_ssrf_classify(&ss.sa, sizeof(ss.sun)) !=
	    WEBHOOK_SSRF_UNSUPPORTED ||
	    webhook_ssrf_allowed(&ss.sa, sizeof(ss.sun), true, NULL))
		fail_msg("AF_UNIX was not refused");
	len = make_sockaddr(0, "truncated", "8.8.8.8", &ss);
	if (webhook_ssrf_classify(&ss.sa, len - 1) !=
	    WEBHOOK_SSRF_UNSUPPORTED)
		fail_msg("a truncated sockaddr_in was classified");
	len = make_sockaddr(0, "truncated", "2001:4860::1", &ss);
	if (webhook_ssrf_classify(&ss.sa, len - 1) !=
	    WEBHOOK_SSRF_UNSUPPORTED)
		fail_msg("a truncated sockaddr_in6 was classified");
	if (webhook_ssrf_classify(NULL, 0) != WEBHOOK_SSRF_UNSUPPORTED)
		fail_msg("NULL was classified");
	if (strcmp(webhook_ssrf_class_name(WEBHOOK_SSRF_LOOPBACK),
		   "loopback") != 0)
		fail_msg("class name of loopback");
}

int main(void)
{
	static const struct CMUnitTest misc_tests[] = {
		cmocka_unit_test(test_unsupported),
	};
	int failed = 0;

	failed += RUN_TABLE("webhook_ssrf_classify", test_ssrf, ssrf_cases);
	failed += cmocka_run_group_tests_name("webhook_ssrf misc", misc_tests,
					      NULL, NULL);
	return failed == 0 ? 0 : 1;
}
