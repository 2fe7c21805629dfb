/* Users from a Dovecot passwd-file, and password checks. */

#include "pop3-retention-config.h"
#include "shim-passwd.h"
#include "shim-config.h"
#include "shim-params.h"

#include <crypt.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

/* user:password:uid:gid:gecos:home:shell:extra_fields */
#define FIELD_USER 0
#define FIELD_PASSWORD 1
#define FIELD_HOME 5
#define FIELD_EXTRA 7

enum scheme_kind {
	SCHEME_UNKNOWN = 0,
	SCHEME_PLAIN,
	SCHEME_CRYPT,
};

struct passwd_entry {
	struct shim_passwd_user pub;
	/* the line, split in place: every string of pub points into it */
	char *line;
	unsigned int line_number;
	const char *keys[SHIM_PASSWD_EXTRA_MAX];
	const char *values[SHIM_PASSWD_EXTRA_MAX];
};

struct shim_passwd {
	struct passwd_entry **entries;	/* sorted by name */
	unsigned int count, alloc;
	unsigned int plain_count;
};

static const struct {
	const char *name;
	enum scheme_kind kind;
} schemes[] = {
	{ "PLAIN", SCHEME_PLAIN },
	{ "CLEAR", SCHEME_PLAIN },
	{ "CLEARTEXT", SCHEME_PLAIN },
	{ "CRYPT", SCHEME_CRYPT },
	{ "SHA512-CRYPT", SCHEME_CRYPT },
	{ "SHA256-CRYPT", SCHEME_CRYPT },
	{ "MD5-CRYPT", SCHEME_CRYPT },
	{ "BLF-CRYPT", SCHEME_CRYPT },
};

/* The scheme of stored and, in data_r, what follows "{SCHEME}". No
   scheme is Dovecot's default, CRYPT. */
static enum scheme_kind scheme_parse(const char *stored, const char **data_r)
{
	const char *end;
	size_t len;
	unsigned int i;

	*data_r = stored;
	if (stored[0] != '{')
		return SCHEME_CRYPT;
	end = strchr(stored, '}');
	if (end == NULL)
		return SCHEME_UNKNOWN;
	len = (size_t)(end - (stored + 1));
	*data_r = end + 1;
	for (i = 0; i < sizeof(schemes) / sizeof(schemes[0]); i++) {
		if (strlen(schemes[i].name) == len &&
		    strncasecmp(schemes[i].name, stored + 1, len) == 0)
			return schemes[i].kind;
	}
	return SCHEME_UNKNOWN;
}

/* A traditional DES hash: 2 salt and 11 hash characters. Anything else
   without a '$' is no hash at all (crypt_checksalt() takes any two salt
   characters), most likely a plain text password missing its {PLAIN}. */
static bool des_shaped(const char *hash)
{
	static const char alphabet[] = "./0123456789"
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

	return strlen(hash) == 13 && strspn(hash, alphabet) == 13;
}

static bool crypt_supported(const char *hash)
{
	int ret;

	if (hash[0] != '$' && hash[0] != '_' && !des_shaped(hash))
		return false;
	/* LEGACY: DES and MD5-CRYPT, still checked by crypt_r() */
	ret = crypt_checksalt(hash);
	return ret == CRYPT_SALT_OK || ret == CRYPT_SALT_METHOD_LEGACY;
}

bool shim_passwd_scheme_supported(const char *stored)
{
	const char *data;

	switch (scheme_parse(stored, &data)) {
	case SCHEME_PLAIN:
		return true;
	case SCHEME_CRYPT:
		return crypt_supported(data);
	case SCHEME_UNKNOWN:
		break;
	}
	return false;
}

/* Compare a and b without a timing difference that depends on where
   they differ or on how their lengths differ: both are digested first
   (SHA-256 takes the same time for any length under a block, and is
   linear beyond), then the digests are compared in constant time. */
static int secret_equal(const char *a, size_t a_len, const char *b,
			size_t b_len)
{
	unsigned char da[EVP_MAX_MD_SIZE], db[EVP_MAX_MD_SIZE];
	unsigned int la = 0, lb = 0;
	int ret = -1;

	if (EVP_Digest(a, a_len, da, &la, EVP_sha256(), NULL) == 1 &&
	    EVP_Digest(b, b_len, db, &lb, EVP_sha256(), NULL) == 1 &&
	    la == lb) {
		ret = ((CRYPTO_memcmp(da, db, la) == 0) & (a_len == b_len)) ?
			      1 : 0;
	}
	OPENSSL_cleanse(da, sizeof(da));
	OPENSSL_cleanse(db, sizeof(db));
	return ret;
}

/* What stored is, for errors: its scheme or crypt(3) prefix, never
   its data (which may be a plain text password missing its {PLAIN}). */
static const char *stored_describe(const char *stored, char *buf,
				   size_t size)
{
	size_t len;

	if (stored[0] == '{' || stored[0] == '$') {
		len = strcspn(stored + 1, stored[0] == '{' ? "}" : "$");
		if (len <= 32 && stored[len + 1] != '\0') {
			snprintf(buf, size, "'%.*s'", (int)len + 2, stored);
			return buf;
		}
	}
	return "no crypt(3) hash (plain text needs {PLAIN})";
}

static int crypt_verify(const char *hash, const char *password,
			char *error, size_t error_size)
{
	struct crypt_data *data;
	const char *out;
	char desc[64];
	int ret;

	if (!crypt_supported(hash)) {
		snprintf(error, error_size, "unsupported password: %s",
			 stored_describe(hash, desc, sizeof(desc)));
		return -1;
	}
	/* about 32 KiB: not on a worker thread's stack */
	data = calloc(1, sizeof(*data));
	if (data == NULL) {
		snprintf(error, error_size, "out of memory");
		return -1;
	}
	out = crypt_r(password, hash, data);
	if (out == NULL || out[0] == '*') {
		snprintf(error, error_size, "malformed crypt(3) hash %s",
			 stored_describe(hash, desc, sizeof(desc)));
		ret = -1;
	} else {
		ret = secret_equal(out, strlen(out), hash, strlen(hash));
		if (ret < 0)
			snprintf(error, error_size, "SHA-256 failed");
	}
	OPENSSL_cleanse(data, sizeof(*data));
	free(data);
	return ret;
}

int shim_passwd_verify(const char *stored, const char *password,
		       char *error, size_t error_size)
{
	const char *data;
	char desc[64];
	int ret;

	switch (scheme_parse(stored, &data)) {
	case SCHEME_PLAIN:
		ret = secret_equal(data, strlen(data), password,
				   strlen(password));
		if (ret < 0)
			snprintf(error, error_size, "SHA-256 failed");
		return ret;
	case SCHEME_CRYPT:
		return crypt_verify(data, password, error, error_size);
	case SCHEME_UNKNOWN:
		break;
	}
	snprintf(error, error_size, "unsupported password scheme %s",
		 stored_describe(stored, desc, sizeof(desc)));
	return -1;
}

static void entry_free(struct passwd_entry **_entry)
{
	struct passwd_entry *entry = *_entry;

	if (entry == NULL)
		return;
	*_entry = NULL;
	/* {PLAIN} passwords are in the line */
	OPENSSL_cleanse(entry->line, strlen(entry->line));
	free(entry->line);
	free(entry);
}

void shim_passwd_free(struct shim_passwd **_passwd)
{
	struct shim_passwd *passwd = *_passwd;
	unsigned int i;

	if (passwd == NULL)
		return;
	*_passwd = NULL;
	for (i = 0; i < passwd->count; i++)
		entry_free(&passwd->entries[i]);
	free(passwd->entries);
	free(passwd);
}

/* Split the extra fields (blank-separated key=value) of entry. */
static int entry_parse_extra(struct passwd_entry *entry, char *p,
			     char *error, size_t error_size)
{
	char *word, *eq;

	entry->pub.extra_keys = entry->keys;
	entry->pub.extra_values = entry->values;
	for (;;) {
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p == '\0')
			return 0;
		word = p;
		while (*p != '\0' && *p != ' ' && *p != '\t')
			p++;
		if (*p != '\0')
			*p++ = '\0';
		eq = strchr(word, '=');
		if (eq == NULL || eq == word) {
			snprintf(error, error_size,
				 "extra field '%.64s' is not key=value", word);
			return -1;
		}
		if (entry->pub.extra_count == SHIM_PASSWD_EXTRA_MAX) {
			snprintf(error, error_size,
				 "more than %d extra fields",
				 SHIM_PASSWD_EXTRA_MAX);
			return -1;
		}
		*eq = '\0';
		entry->keys[entry->pub.extra_count] = word;
		entry->values[entry->pub.extra_count] = eq + 1;
		entry->pub.extra_count++;
	}
}

/* Split entry->line in place. */
static int entry_parse(struct passwd_entry *entry, char *error,
		       size_t error_size)
{
	char *fields[FIELD_EXTRA + 1];
	char desc[64];
	char *p = entry->line;
	unsigned int n = 0;

	memset(fields, 0, sizeof(fields));
	fields[n++] = p;
	/* the extra fields are the rest of the line, ':' included
	   (pop3_retention_remove=move:Archive) */
	while (n <= FIELD_EXTRA && (p = strchr(p, ':')) != NULL) {
		*p++ = '\0';
		fields[n++] = p;
	}
	if (fields[FIELD_USER][0] == '\0') {
		snprintf(error, error_size, "empty user name");
		return -1;
	}
	if (fields[FIELD_PASSWORD] == NULL ||
	    fields[FIELD_PASSWORD][0] == '\0') {
		snprintf(error, error_size, "user %.64s has no password field",
			 fields[FIELD_USER]);
		return -1;
	}
	if (!shim_passwd_scheme_supported(fields[FIELD_PASSWORD])) {
		snprintf(error, error_size,
			 "user %.64s: unsupported password scheme or hash: "
			 "%s", fields[FIELD_USER],
			 stored_describe(fields[FIELD_PASSWORD], desc,
					 sizeof(desc)));
		return -1;
	}
	entry->pub.name = fields[FIELD_USER];
	entry->pub.password = fields[FIELD_PASSWORD];
	entry->pub.home = fields[FIELD_HOME] != NULL ? fields[FIELD_HOME] : "";
	if (fields[FIELD_EXTRA] == NULL) {
		entry->pub.extra_keys = entry->keys;
		entry->pub.extra_values = entry->values;
		return 0;
	}
	return entry_parse_extra(entry, fields[FIELD_EXTRA], error,
				 error_size);
}

static int passwd_add(struct shim_passwd *passwd, const char *line,
		      unsigned int line_number, char *error,
		      size_t error_size)
{
	struct passwd_entry *entry, **entries;
	unsigned int alloc;

	if (passwd->count == passwd->alloc) {
		alloc = passwd->alloc == 0 ? 64 : passwd->alloc * 2;
		entries = realloc(passwd->entries, alloc * sizeof(*entries));
		if (entries == NULL) {
			snprintf(error, error_size, "out of memory");
			return -1;
		}
		passwd->entries = entries;
		passwd->alloc = alloc;
	}
	entry = calloc(1, sizeof(*entry));
	if (entry == NULL || (entry->line = strdup(line)) == NULL) {
		free(entry);
		snprintf(error, error_size, "out of memory");
		return -1;
	}
	entry->line_number = line_number;
	if (entry_parse(entry, error, error_size) < 0) {
		entry_free(&entry);
		return -1;
	}
	if (scheme_parse(entry->pub.password, &line) == SCHEME_PLAIN)
		passwd->plain_count++;
	passwd->entries[passwd->count++] = entry;
	return 0;
}

static int entry_cmp(const void *a, const void *b)
{
	const struct passwd_entry *const *ea = a, *const *eb = b;

	return strcmp((*ea)->pub.name, (*eb)->pub.name);
}

static int passwd_read(struct shim_passwd *passwd, const char *path,
		       FILE *fp, char *line, char *error, size_t error_size)
{
	char sub[256];
	unsigned int line_number = 0;
	size_t total = 0;
	int ret;

	while ((ret = shim_read_line(fp, line, SHIM_PASSWD_LINE_MAX + 1,
				     &total, SIZE_MAX)) != 0) {
		line_number++;
		if (ret == -1) {
			snprintf(sub, sizeof(sub), "line longer than %d bytes",
				 SHIM_PASSWD_LINE_MAX);
		} else if (ret < 0) {
			snprintf(sub, sizeof(sub), "%s", ret == -2 ?
				 "NUL byte in line" : strerror(errno));
		} else if (line[0] == '\0' || line[0] == '#') {
			continue;
		} else if (passwd_add(passwd, line, line_number, sub,
				      sizeof(sub)) == 0) {
			continue;
		}
		snprintf(error, error_size, "%s:%u: %s", path, line_number,
			 sub);
		return -1;
	}
	return 0;
}

static int passwd_sort(struct shim_passwd *passwd, const char *path,
		       char *error, size_t error_size)
{
	const struct passwd_entry *a, *b;
	unsigned int i;

	if (passwd->count > 0)
		qsort(passwd->entries, passwd->count,
		      sizeof(passwd->entries[0]), entry_cmp);
	for (i = 1; i < passwd->count; i++) {
		a = passwd->entries[i - 1];
		b = passwd->entries[i];
		if (strcmp(a->pub.name, b->pub.name) != 0)
			continue;
		if (a->line_number > b->line_number) {
			a = passwd->entries[i];
			b = passwd->entries[i - 1];
		}
		snprintf(error, error_size,
			 "%s:%u: duplicate user %.64s (first on line %u)",
			 path, b->line_number, b->pub.name, a->line_number);
		return -1;
	}
	return 0;
}

int shim_passwd_load(const char *path, struct shim_passwd **passwd_r,
		     char *error, size_t error_size)
{
	struct shim_passwd *passwd;
	char *line;
	FILE *fp;
	int ret;

	*passwd_r = NULL;
	passwd = calloc(1, sizeof(*passwd));
	line = malloc(SHIM_PASSWD_LINE_MAX + 1);
	if (passwd == NULL || line == NULL) {
		free(passwd);
		free(line);
		snprintf(error, error_size, "%s: out of memory", path);
		return -1;
	}
	fp = fopen(path, "re");
	if (fp == NULL) {
		snprintf(error, error_size, "%s: %s", path, strerror(errno));
		ret = -1;
	} else {
		ret = passwd_read(passwd, path, fp, line, error, error_size);
		fclose(fp);
	}
	if (ret == 0)
		ret = passwd_sort(passwd, path, error, error_size);
	OPENSSL_cleanse(line, SHIM_PASSWD_LINE_MAX + 1);
	free(line);
	if (ret < 0) {
		shim_passwd_free(&passwd);
		return -1;
	}
	*passwd_r = passwd;
	return 0;
}

const struct shim_passwd_user *
shim_passwd_lookup(const struct shim_passwd *passwd, const char *name)
{
	unsigned int lo = 0, hi = passwd->count, mid;
	int cmp;

	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		cmp = strcmp(name, passwd->entries[mid]->pub.name);
		if (cmp == 0)
			return &passwd->entries[mid]->pub;
		if (cmp < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

unsigned int shim_passwd_count(const struct shim_passwd *passwd)
{
	return passwd->count;
}

const struct shim_passwd_user *
shim_passwd_user(const struct shim_passwd *passwd, unsigned int idx)
{
	return idx < passwd->count ? &passwd->entries[idx]->pub : NULL;
}

unsigned int shim_passwd_plain_count(const struct shim_passwd *passwd)
{
	return passwd->plain_count;
}
