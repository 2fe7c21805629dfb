/* Algorithms fetched once (see the header). */

#include "pop3-retention-config.h"
#include "webhook-crypto.h"

#include <openssl/core_names.h>
#include <stdbool.h>
#include <stddef.h>

static bool fetched;
static EVP_MD *sha256_md;
static EVP_MAC *hmac_mac;

static void fetch_all(void)
{
	if (fetched)
		return;
	fetched = true;
	sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
	hmac_mac = EVP_MAC_fetch(NULL, OSSL_MAC_NAME_HMAC, NULL);
}

const EVP_MD *webhook_crypto_sha256(void)
{
	fetch_all();
	return sha256_md;
}

EVP_MAC *webhook_crypto_hmac(void)
{
	fetch_all();
	return hmac_mac;
}
