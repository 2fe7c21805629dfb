/* shim-passwd: the passwd-file format and every password scheme, with
   hashes made here by crypt_r(3) and known answers from openssl. */

#include "pop3-retention-config.h"
#include "shim-passwd.h"
#include "shim-params.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "test-table.h"

#include <crypt.h>
#include <unistd.h>

#define PASSWORD "s3cret:pass word"

struct verify_row {
	const char *name;
	/* "{SCHEME}" written before the hash, or "" */
	const char *scheme;
	/* a crypt(3) prefix: a hash of PASSWORD is made with it; NULL:
	   stored is used as it is */
	const char *prefix;
	const char *stored;
	const char *password;
	int want;
};

/* openssl passwd -6 -salt abc secret (and -5, -1) */
#define KAT_SHA512 "$6$abc$IdWKNKTJEb8LxY7CGg8YBXlvtfZzFw7Mp/r6niK9YB2mdv" \
	"gY..TKjv1T..8RadRt2qvUHYRLr/TsVArtr91iR1"
#define KAT_SHA256 "$5$abc$qsg6EHbUzHQzF1POlD7zUwBINSELQxypPaeDcZe6vH0"
#define KAT_MD5 "$1$abc$iCQ2D3nhptRYi27fDYv2s1"

static const struct verify_row verify_rows[] = {
	{ "sha512-crypt", "{SHA512-CRYPT}", "$6$", NULL, PASSWORD, 1 },
	{ "sha512-crypt wrong", "{SHA512-CRYPT}", "$6$", NULL, "s3cret", 0 },
	{ "sha256-crypt", "{SHA256-CRYPT}", "$5$", NULL, PASSWORD, 1 },
	{ "sha256-crypt wrong", "{SHA256-CRYPT}", "$5$", NULL, "", 0 },
	{ "md5-crypt", "{MD5-CRYPT}", "$1$", NULL, PASSWORD, 1 },
	{ "md5-crypt wrong", "{MD5-CRYPT}", "$1$", NULL, PASSWORD "x", 0 },
	{ "blf-crypt 2b", "{BLF-CRYPT}", "$2b$", NULL, PASSWORD, 1 },
	{ "blf-crypt 2b wrong", "{BLF-CRYPT}", "$2b$", NULL, "S3cret", 0 },
	{ "blf-crypt 2y", "{BLF-CRYPT}", "$2y$", NULL, PASSWORD, 1 },
	{ "yescrypt", "", "$y$", NULL, PASSWORD, 1 },
	{ "yescrypt wrong", "", "$y$", NULL, "s3cret:pass wore", 0 },
	{ "yescrypt {CRYPT}", "{CRYPT}", "$y$", NULL, PASSWORD, 1 },
	{ "sha512 no scheme", "", "$6$", NULL, PASSWORD, 1 },
	{ "scheme lower case", "{sha512-crypt}", "$6$", NULL, PASSWORD, 1 },
	{ "kat sha512", "", NULL, KAT_SHA512, "secret", 1 },
	{ "kat sha512 wrong", "", NULL, KAT_SHA512, "Secret", 0 },
	{ "kat {SHA512-CRYPT}", "", NULL, "{SHA512-CRYPT}" KAT_SHA512,
	  "secret", 1 },
	{ "kat sha256", "", NULL, "{SHA256-CRYPT}" KAT_SHA256, "secret", 1 },
	{ "kat md5", "", NULL, "{MD5-CRYPT}" KAT_MD5, "secret", 1 },
	{ "kat md5 wrong", "", NULL, KAT_MD5, "secre", 0 },
	{ "des", "", NULL, "abNANd1rDfiNc", "secret", 1 },
	{ "des wrong", "{CRYPT}", NULL, "{CRYPT}abNANd1rDfiNc", "secreT", 0 },
	{ "plain text without scheme", "", NULL, "secret", "secret", -1 },
	{ "plain", "", NULL, "{PLAIN}secret", "secret", 1 },
	{ "plain shorter", "", NULL, "{PLAIN}secret", "secre", 0 },
	{ "plain longer", "", NULL, "{PLAIN}secret", "secrets", 0 },
	{ "plain empty", "", NULL, "{PLAIN}secret", "", 0 },
	{ "plain case", "", NULL, "{PLAIN}secret", "SECRET", 0 },
	{ "clear", "", NULL, "{CLEAR}pa:ss{}", "pa:ss{}", 1 },
	{ "cleartext", "", NULL, "{CLEARTEXT}x", "x", 1 },
	{ "cleartext wrong", "", NULL, "{CLEARTEXT}x", "y", 0 },
	{ "plain lower case", "", NULL, "{plain}x", "x", 1 },
	{ "ssha unsupported", "", NULL, "{SSHA}abcdefgh", "x", -1 },
	{ "pbkdf2 unsupported", "", NULL, "{PBKDF2}$1$abc$1000$ff", "x", -1 },
	{ "no closing brace", "", NULL, "{PLAIN secret", "x", -1 },
	{ "unknown crypt prefix", "", NULL, "$zz$abc$def", "x", -1 },
	{ "locked", "", NULL, "!", "x", -1 },
	{ "star", "", NULL, "*", "x", -1 },
	{ "empty crypt", "{CRYPT}", NULL, "{CRYPT}", "x", -1 },
	{ "malformed bsdi", "", NULL, "_J9..", "x", -1 },
};

/* The stored password of row r into buf. Returns 0, or -1 when this
   libcrypt cannot make such a hash. */
static int row_stored(const struct verify_row *r, char *buf, size_t size)
{
	char salt[CRYPT_GENSALT_OUTPUT_SIZE];
	struct crypt_data *data;
	const char *hash;

	if (r->prefix == NULL) {
		snprintf(buf, size, "%s", r->stored);
		return 0;
	}
	if (crypt_gensalt_rn(r->prefix, 0, NULL, 0, salt,
			     sizeof(salt)) == NULL)
		return -1;
	data = calloc(1, sizeof(*data));
	assert_non_null(data);
	hash = crypt_r(PASSWORD, salt, data);
	assert_non_null(hash);
	assert_true(hash[0] != '*');
	snprintf(buf, size, "%s%s", r->scheme, hash);
	free(data);
	return 0;
}

static void test_verify(void **state)
{
	const struct verify_row *r = *state;
	unsigned int i = (unsigned int)(r - verify_rows);
	char stored[CRYPT_OUTPUT_SIZE + 32], error[256];
	int ret;

	if (row_stored(r, stored, sizeof(stored)) < 0) {
		/* BLF-CRYPT "where libcrypt has it" */
		snprintf(stored, sizeof(stored), "%s%s", r->scheme,
			 r->prefix);
		if (shim_passwd_scheme_supported(stored))
			fail_msg("row %u (%s): no hash, but supported", i,
				 r->name);
		skip();
	}
	/* a malformed hash of a supported kind fails only verify() */
	if (shim_passwd_scheme_supported(stored) !=
	    (r->want >= 0 || strstr(r->name, "malformed") != NULL))
		fail_msg("row %u (%s): supported(%s) is %d", i, r->name,
			 stored, !shim_passwd_scheme_supported(stored));
	error[0] = '\0';
	ret = shim_passwd_verify(stored, r->password, error, sizeof(error));
	if (ret != r->want)
		fail_msg("row %u (%s): verify(%s) = %d, want %d (%s)", i,
			 r->name, stored, ret, r->want, error);
	if (ret < 0 && error[0] == '\0')
		fail_msg("row %u (%s): no error text", i, r->name);
	/* errors go to logs: never the stored data */
	if (ret < 0 && strstr(error, "secret") != NULL)
		fail_msg("row %u (%s): error shows data: %s", i, r->name,
			 error);
}

struct load_row {
	const char *name;
	const char *content;
	/* NULL: loads; else a substring of the error */
	const char *error;
	unsigned int count, plain_count;
	/* a user to look up, with its home and its first extra field */
	const char *user, *home;
	unsigned int extra_count;
	const char *key0, *value0;
};

static const struct load_row load_rows[] = {
	{ "minimal", "a:{PLAIN}x\n", NULL, 1, 1, "a", "", 0, NULL, NULL },
	{ "comments and blanks", "# users\n\na:{PLAIN}x\n\n#b:{PLAIN}y\n",
	  NULL, 1, 1, "a", "", 0, NULL, NULL },
	{ "no final newline", "a:{PLAIN}x\nb:" KAT_SHA512, NULL, 2, 1, "b",
	  "", 0, NULL, NULL },
	{ "crlf", "a:{PLAIN}x:1000:1000::/home/a:\r\n", NULL, 1, 1, "a",
	  "/home/a", 0, NULL, NULL },
	{ "full line", "bob:" KAT_MD5 ":1000:1000:Bob B:/home/bob:/bin/sh:"
	  "userdb_pop3_retention_policy=keep "
	  "userdb_pop3_retention_keep=30d\n", NULL, 1, 0, "bob", "/home/bob",
	  2, "userdb_pop3_retention_policy", "keep" },
	{ "colon in extra field", "c:{PLAIN}x::::/h::"
	  "pop3_retention_remove=move:Archive  quota=1G\n", NULL, 1, 1, "c",
	  "/h", 2, "pop3_retention_remove", "move:Archive" },
	{ "empty value", "c:{PLAIN}x:::::: k=\n", NULL, 1, 1, "c", "", 1,
	  "k", "" },
	{ "sorted lookup", "z:{PLAIN}1\nm:{PLAIN}2\na:{PLAIN}3\n", NULL, 3, 3,
	  "m", "", 0, NULL, NULL },
	{ "no password field", "a:{PLAIN}x\nb\n", ":2: user b has no "
	  "password field", 0, 0, NULL, NULL, 0, NULL, NULL },
	{ "empty password", "a:\n", ":1: user a has no password field", 0, 0,
	  NULL, NULL, 0, NULL, NULL },
	{ "empty user", ":{PLAIN}x\n", ":1: empty user name", 0, 0, NULL, NULL,
	  0, NULL, NULL },
	{ "duplicate", "a:{PLAIN}x\nb:{PLAIN}x\na:{PLAIN}y\n",
	  ":3: duplicate user a (first on line 1)", 0, 0, NULL, NULL, 0, NULL,
	  NULL },
	{ "unsupported scheme", "a:{SSHA}s3cretpw\n", ":1: user a: "
	  "unsupported password scheme or hash: '{SSHA}'", 0, 0, NULL, NULL, 0,
	  NULL, NULL },
	{ "plain text without {PLAIN}", "a:s3cretpw:1000:1000::/home/a::\n",
	  ":1: user a: unsupported password scheme or hash: no crypt(3) hash "
	  "(plain text needs {PLAIN})", 0, 0, NULL, NULL, 0, NULL, NULL },
	{ "unknown crypt prefix", "a:$zz$s3cretpw\n", ":1: user a: "
	  "unsupported password scheme or hash: '$zz$'", 0, 0, NULL, NULL, 0,
	  NULL, NULL },
	{ "extra without =", "a:{PLAIN}x:::::: nopassword\n",
	  ":1: extra field 'nopassword' is not key=value", 0, 0, NULL, NULL, 0,
	  NULL, NULL },
	{ "extra without key", "a:{PLAIN}x:::::: =v\n", "not key=value", 0, 0,
	  NULL, NULL, 0, NULL, NULL },
	{ "nul byte", "a:{PLAIN}x\nb:{PLAIN}\0y\n", ":2: NUL byte", 0, 0,
	  NULL, NULL, 0, NULL, NULL },
};

static char tmp_dir[64];

static int write_file(const char *path, const char *content, size_t len)
{
	FILE *fp = fopen(path, "w");

	if (fp == NULL)
		return -1;
	if (fwrite(content, 1, len, fp) != len) {
		fclose(fp);
		return -1;
	}
	return fclose(fp);
}

/* a row's content, which may hold one NUL byte before its last line */
static size_t content_len(const char *content)
{
	size_t len = strlen(content);

	if (strstr(content, "b:{PLAIN}") != NULL && content[len - 1] != '\n')
		len += 1 + strlen(content + len + 1);
	return len;
}

static void test_load(void **state)
{
	const struct load_row *r = *state;
	unsigned int i = (unsigned int)(r - load_rows);
	const struct shim_passwd_user *user;
	struct shim_passwd *passwd;
	char path[128], error[512];
	int ret;

	snprintf(path, sizeof(path), "%s/passwd-%u", tmp_dir, i);
	assert_int_equal(write_file(path, r->content,
				    content_len(r->content)), 0);
	ret = shim_passwd_load(path, &passwd, error, sizeof(error));
	if (r->error != NULL) {
		if (ret != -1 || passwd != NULL)
			fail_msg("row %u (%s): loaded, want '%s'", i, r->name,
				 r->error);
		if (strstr(error, r->error) == NULL ||
		    strstr(error, "s3cret") != NULL ||
		    strncmp(error, path, strlen(path)) != 0)
			fail_msg("row %u (%s): error '%s', want '%s'", i,
				 r->name, error, r->error);
		return;
	}
	if (ret != 0)
		fail_msg("row %u (%s): %s", i, r->name, error);
	if (shim_passwd_count(passwd) != r->count ||
	    shim_passwd_plain_count(passwd) != r->plain_count)
		fail_msg("row %u (%s): %u users, %u plain", i, r->name,
			 shim_passwd_count(passwd),
			 shim_passwd_plain_count(passwd));
	user = shim_passwd_lookup(passwd, r->user);
	if (user == NULL || strcmp(user->name, r->user) != 0 ||
	    strcmp(user->home, r->home) != 0 ||
	    user->extra_count != r->extra_count)
		fail_msg("row %u (%s): user %s wrong", i, r->name, r->user);
	if (r->key0 != NULL && (strcmp(user->extra_keys[0], r->key0) != 0 ||
				strcmp(user->extra_values[0], r->value0) != 0))
		fail_msg("row %u (%s): extra %s=%s", i, r->name,
			 user->extra_keys[0], user->extra_values[0]);
	if (shim_passwd_lookup(passwd, "nobody") != NULL ||
	    shim_passwd_user(passwd, r->count) != NULL)
		fail_msg("row %u (%s): found a user not there", i, r->name);
	shim_passwd_free(&passwd);
	assert_null(passwd);
}

/* Limits: a line of SHIM_PASSWD_LINE_MAX bytes loads, one more does not;
   SHIM_PASSWD_EXTRA_MAX extra fields load, one more does not; every
   user of a large file is found. */
static void test_limits(void **state)
{
	static const struct { size_t len; unsigned int extras; int ret; }
		cases[] = { { SHIM_PASSWD_LINE_MAX, 0, 0 },
			    { SHIM_PASSWD_LINE_MAX + 1, 0, -1 },
			    { 0, SHIM_PASSWD_EXTRA_MAX, 0 },
			    { 0, SHIM_PASSWD_EXTRA_MAX + 1, -1 } };
	struct shim_passwd *passwd;
	char path[128], error[512], *buf;
	unsigned int i, j;
	size_t len;

	(void)state;
	buf = malloc(256 * 1024);
	assert_non_null(buf);
	snprintf(path, sizeof(path), "%s/passwd-limits", tmp_dir);
	for (i = 0; i < N_ELEMENTS(cases); i++) {
		len = (size_t)snprintf(buf, 64, "u:{PLAIN}x::::::");
		for (j = 0; j < cases[i].extras; j++)
			len += (size_t)snprintf(buf + len, 32, " k%u=v", j);
		if (cases[i].len > 0)
			len += (size_t)snprintf(buf + len, 32, " pad=");
		while (len < cases[i].len)
			buf[len++] = 'x';
		buf[len++] = '\n';
		assert_int_equal(write_file(path, buf, len), 0);
		if (shim_passwd_load(path, &passwd, error,
				     sizeof(error)) != cases[i].ret)
			fail_msg("limit case %u: %s", i, error);
		if (cases[i].ret < 0 && strstr(error, ":1: ") == NULL)
			fail_msg("limit case %u: error '%s'", i, error);
		shim_passwd_free(&passwd);
	}
	len = 0;
	for (j = 0; j < 5000; j++)
		len += (size_t)snprintf(buf + len, 32, "user%u:{PLAIN}%u\n", j,
					j);
	assert_int_equal(write_file(path, buf, len), 0);
	assert_int_equal(shim_passwd_load(path, &passwd, error, sizeof(error)),
			 0);
	assert_int_equal(shim_passwd_count(passwd), 5000);
	for (j = 0; j < 5000; j++) {
		char name[32];

		snprintf(name, sizeof(name), "user%u", j);
		if (shim_passwd_lookup(passwd, name) == NULL)
			fail_msg("user %u not found", j);
	}
	shim_passwd_free(&passwd);
	assert_int_equal(shim_passwd_load("/nonexistent/passwd", &passwd,
					  error, sizeof(error)), -1);
	assert_non_null(strstr(error, "/nonexistent/passwd: "));
	free(buf);
}

int main(void)
{
	const struct CMUnitTest limits[] = {
		cmocka_unit_test(test_limits),
	};
	int failed;

	snprintf(tmp_dir, sizeof(tmp_dir), "/tmp/test-shim-passwd.XXXXXX");
	if (mkdtemp(tmp_dir) == NULL)
		return 1;
	failed = RUN_TABLE("shim-passwd verify", test_verify, verify_rows);
	failed += RUN_TABLE("shim-passwd load", test_load, load_rows);
	failed += cmocka_run_group_tests_name("shim-passwd limits", limits,
					      NULL, NULL);
	test_remove_tree(tmp_dir);
	return failed == 0 ? 0 : 1;
}
