/* libFuzzer target: the SSRF address classifier (webhook-ssrf.c), the
   real webhook_ssrf_classify() / _allowed() on raw socket addresses.

   Input: the bytes of a struct sockaddr as libcurl's open-socket
   callback would hand it over (any family, any length, unaligned).
   Invariants: the class is one of the enum; allowed() agrees with
   class_allowed(); allow_private only ever widens; every class has a
   name; an IPv4 address has the same class bare, IPv4-mapped
   (::ffff:0:0/96) and behind the NAT64 well-known prefix
   (64:ff9b::/96). */

#include "pop3-retention-config.h"
#include "webhook-ssrf.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static enum webhook_ssrf_class check_one(const struct sockaddr *sa,
					 socklen_t len)
{
	enum webhook_ssrf_class cls = webhook_ssrf_classify(sa, len), cls2;
	bool open, closed;

	if (cls > WEBHOOK_SSRF_UNSUPPORTED)
		abort();
	open = webhook_ssrf_allowed(sa, len, true, &cls2);
	if (cls2 != cls || open != webhook_ssrf_class_allowed(cls, true))
		abort();
	closed = webhook_ssrf_allowed(sa, len, false, NULL);
	if (closed != webhook_ssrf_class_allowed(cls, false) ||
	    (closed && !open) || (closed != (cls == WEBHOOK_SSRF_PUBLIC)))
		abort();
	if (webhook_ssrf_class_name(cls) == NULL ||
	    webhook_ssrf_class_name(cls)[0] == '\0')
		abort();
	return cls;
}

static void check_embedded(const uint8_t v4[4])
{
	static const uint8_t mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0,
					    0, 0, 0xff, 0xff };
	static const uint8_t nat64[12] = { 0, 0x64, 0xff, 0x9b };
	struct sockaddr_in sin;
	struct sockaddr_in6 sin6;
	enum webhook_ssrf_class cls;

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	memcpy(&sin.sin_addr, v4, 4);
	cls = check_one((const struct sockaddr *)&sin, sizeof(sin));
	if (cls == WEBHOOK_SSRF_UNSUPPORTED)
		abort();

	memset(&sin6, 0, sizeof(sin6));
	sin6.sin6_family = AF_INET6;
	memcpy(sin6.sin6_addr.s6_addr, mapped, 12);
	memcpy(sin6.sin6_addr.s6_addr + 12, v4, 4);
	if (check_one((const struct sockaddr *)&sin6, sizeof(sin6)) != cls)
		abort();
	memcpy(sin6.sin6_addr.s6_addr, nat64, 12);
	if (check_one((const struct sockaddr *)&sin6, sizeof(sin6)) != cls)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sockaddr_in6 sin6;
	uint8_t *copy;

	/* exactly as given (ASan sees any read past len) */
	copy = malloc(size == 0 ? 1 : size);
	if (copy == NULL)
		abort();
	memcpy(copy, data, size);
	(void)check_one((const struct sockaddr *)copy, (socklen_t)size);
	free(copy);

	/* the bytes as an address of each family */
	if (size >= 4)
		check_embedded(data);
	if (size >= 16) {
		memset(&sin6, 0, sizeof(sin6));
		sin6.sin6_family = AF_INET6;
		memcpy(sin6.sin6_addr.s6_addr, data, 16);
		(void)check_one((const struct sockaddr *)&sin6,
				sizeof(sin6));
	}
	return 0;
}
