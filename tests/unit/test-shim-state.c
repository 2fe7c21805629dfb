/* pop3-retentiond's per-maildir state file: a table of files the strict
   parser accepts (with the entries it must give) or refuses (with the
   line it must name); a table of scenarios: round trips normalized to
   sorted order, forget and prune (also on thousands of entries against
   a plain reference), refused bases, a crash's temp file, a file over
   the size limit, and a save into a read-only directory that must keep
   the old file. One cmocka test per table row, each in a fresh
   temporary directory. */

#include "pop3-retention-config.h"
#include "shim-state.h"
#include "shim-params.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "test-table.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define PATH_SIZE 256
#define ENTRIES_MAX 4
#define HEADER "pop3-retentiond-state 1\n"
/* a base of the longest length set() takes, and one more */
#define LONG_BASE_LEN 468
#define X100 "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx" \
	"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"

/* the current row's directory, removed by the teardown */
static char test_dir[64];
static char state_path[PATH_SIZE];

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

static int teardown_dir(void **state)
{
	(void)state;
	if (test_dir[0] != '\0') {
		(void)chmod(test_dir, 0700);
		(void)test_remove_tree(test_dir);
	}
	test_dir[0] = '\0';
	return 0;
}

static void make_test_dir(size_t idx, const char *name)
{
	snprintf(test_dir, sizeof(test_dir), "/tmp/test-shim-state.XXXXXX");
	if (mkdtemp(test_dir) == NULL) {
		test_dir[0] = '\0';
		case_fail(idx, name, "mkdtemp: %s", strerror(errno));
	}
	snprintf(state_path, sizeof(state_path), "%s/" SHIM_STATE_FNAME,
		 test_dir);
}

static void write_file(size_t idx, const char *name, const char *path,
		       const char *data, size_t len)
{
	FILE *f;

	f = fopen(path, "w");
	if (f == NULL || fwrite(data, 1, len, f) != len || fclose(f) != 0)
		case_fail(idx, name, "writing %s: %s", path, strerror(errno));
}

/* The file at path (malloc'ed, NUL-terminated), or NULL when missing. */
static char *read_file(const char *path)
{
	char *buf;
	size_t len;
	FILE *f;

	f = fopen(path, "r");
	if (f == NULL)
		return NULL;
	buf = calloc(1, 1024 * 1024 + 1);
	assert_non_null(buf);
	len = fread(buf, 1, 1024 * 1024, f);
	buf[len] = '\0';
	fclose(f);
	return buf;
}

static bool file_exists(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0;
}

/* ---- the parser ---- */

struct load_entry {
	const char *base;
	int64_t retrieved;
	bool hidden;
	uint64_t size;
};

struct load_case {
	const char *name;
	/* NULL: no file */
	const char *content;
	/* 0: strlen(content) */
	size_t len;
	int ret;
	/* in the error, e.g. "line 3" */
	const char *error;
	struct load_entry entries[ENTRIES_MAX];
};

static const struct load_case load_cases[] = {
	{ "missing file is empty", NULL, 0, 0, NULL, { { NULL } } },
	{ "header only", HEADER, 0, 0, NULL, { { NULL } } },
	{ "entries", HEADER "a 0 - 0\nb 1700000000 h 1234\n"
		     "c,W=5:x 5 - 18446744073709551615\n", 0, 0, NULL,
	  { { "a", 0, false, 0 }, { "b", 1700000000, true, 1234 },
	    { "c,W=5:x", 5, false, UINT64_MAX } } },
	{ "unsorted is accepted", HEADER "z 1 - 1\na 2 h 2\n", 0, 0, NULL,
	  { { "z", 1, false, 1 }, { "a", 2, true, 2 } } },
	{ "8-bit base", HEADER "caf\xc3\xa9 1 - 1\n", 0, 0, NULL,
	  { { "caf\xc3\xa9", 1, false, 1 } } },
	{ "largest time", HEADER "a 9223372036854775807 - 0\n", 0, 0, NULL,
	  { { "a", INT64_MAX, false, 0 } } },
	{ "empty file", "", 0, -1, "line 1", { { NULL } } },
	{ "other version", "pop3-retentiond-state 2\n", 0, -1, "line 1",
	  { { NULL } } },
	{ "header with CRLF", "pop3-retentiond-state 1\r\n", 0, -1, "line 1",
	  { { NULL } } },
	{ "garbage", "hello world\n", 0, -1, "line 1", { { NULL } } },
	{ "garbage entry", HEADER "a 1 - 1\nfoo\n", 0, -1, "line 3",
	  { { NULL } } },
	{ "empty line", HEADER "\n", 0, -1, "line 2", { { NULL } } },
	{ "too many fields", HEADER "a 1 - 1 1\n", 0, -1, "line 2",
	  { { NULL } } },
	{ "two blanks", HEADER "a  1 - 1\n", 0, -1, "line 2", { { NULL } } },
	{ "tab", HEADER "a\t1 - 1\n", 0, -1, "line 2", { { NULL } } },
	{ "CRLF entry", HEADER "a 1 - 1\r\n", 0, -1, "line 2", { { NULL } } },
	{ "negative time", HEADER "a -5 - 1\n", 0, -1, "line 2",
	  { { NULL } } },
	{ "plus sign", HEADER "a +5 - 1\n", 0, -1, "line 2", { { NULL } } },
	{ "hex time", HEADER "a 0x10 - 1\n", 0, -1, "line 2", { { NULL } } },
	{ "time overflow", HEADER "a 9223372036854775808 - 1\n", 0, -1,
	  "line 2", { { NULL } } },
	{ "size overflow", HEADER "a 1 - 18446744073709551616\n", 0, -1,
	  "line 2", { { NULL } } },
	{ "size with unit", HEADER "a 1 - 10k\n", 0, -1, "line 2",
	  { { NULL } } },
	{ "bad flag", HEADER "a 1 x 1\n", 0, -1, "line 2", { { NULL } } },
	{ "two flags", HEADER "a 1 hh 1\n", 0, -1, "line 2", { { NULL } } },
	{ "empty flag", HEADER "a 1  1\n", 0, -1, "line 2", { { NULL } } },
	{ "duplicate base", HEADER "a 1 - 1\nb 1 - 1\na 2 - 2\n", 0, -1,
	  "line 4", { { NULL } } },
	{ "slash in base", HEADER "a/b 1 - 1\n", 0, -1, "line 2",
	  { { NULL } } },
	{ "control character in base", HEADER "a\x01 1 - 1\n", 0, -1,
	  "line 2", { { NULL } } },
	{ "line too long", HEADER "a 1 - 1\n" X100 X100 X100 X100 X100 X100
	  " 1 - 1\n", 0, -1, "line 3: line too long", { { NULL } } },
	/* LONG_BASE_LEN + 1 octets */
	{ "base too long", HEADER X100 X100 X100 X100
	  "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	  "x 1 - 1\n", 0, -1, "line 2: invalid base", { { NULL } } },
	{ "no final newline", HEADER "a 1 - 1", 0, -1, "line 2",
	  { { NULL } } },
	{ "NUL octet", HEADER "a 1\0 - 1\n", sizeof(HEADER "a 1\0 - 1\n") - 1,
	  -1, "line 2", { { NULL } } },
};

static void test_load(void **state)
{
	const struct load_case *c = *state;
	size_t idx = (size_t)(c - load_cases);
	const struct shim_state_entry *e;
	struct shim_state *st = (void *)1;
	char error[512] = "";
	unsigned int i;
	int ret;

	make_test_dir(idx, c->name);
	if (c->content != NULL)
		write_file(idx, c->name, state_path, c->content,
			   c->len != 0 ? c->len : strlen(c->content));
	ret = shim_state_load(state_path, &st, error, sizeof(error));
	if (ret != c->ret)
		case_fail(idx, c->name, "returned %d, expected %d (%s)", ret,
			  c->ret, error);
	if (ret < 0) {
		if (st != NULL)
			case_fail(idx, c->name, "a state on failure");
		if (strstr(error, state_path) == NULL ||
		    strstr(error, c->error) == NULL)
			case_fail(idx, c->name, "error \"%s\", expected the "
				  "path and \"%s\"", error, c->error);
		return;
	}
	for (i = 0; i < ENTRIES_MAX && c->entries[i].base != NULL; i++) {
		e = shim_state_get(st, c->entries[i].base);
		if (e == NULL)
			case_fail(idx, c->name, "no entry %s",
				  c->entries[i].base);
		if ((int64_t)e->first_retrieved_at != c->entries[i].retrieved ||
		    e->hidden != c->entries[i].hidden ||
		    e->size != c->entries[i].size)
			case_fail(idx, c->name, "entry %s: %" PRId64 " %d %"
				  PRIu64, c->entries[i].base,
				  (int64_t)e->first_retrieved_at, e->hidden,
				  e->size);
	}
	if (shim_state_get(st, "nonexistent") != NULL)
		case_fail(idx, c->name, "an entry nobody set");
	if (shim_state_dirty(st))
		case_fail(idx, c->name, "dirty after load");
	shim_state_free(&st);
	assert_null(st);
	shim_state_free(&st);
}

/* ---- scenarios ---- */

enum scenario {
	/* set entries in scrambled order, save, reload */
	SC_ROUND_TRIP,
	/* the same values again do not dirty the state */
	SC_UNCHANGED,
	SC_FORGET,
	SC_PRUNE,
	/* thousands of entries against a reference */
	SC_MANY,
	SC_BAD_BASES,
	/* a temp file of a crashed save (another pid, and our own) */
	SC_CRASH_TEMP,
	SC_TOO_BIG,
	SC_READONLY_DIR,
};

struct scenario_case {
	const char *name;
	enum scenario sc;
	/* the file before, NULL for none */
	const char *before;
	/* the file after save, NULL to skip the check */
	const char *after;
};

static const struct scenario_case scenario_cases[] = {
	{ "round trip, sorted on save", SC_ROUND_TRIP, NULL,
	  HEADER "a.1 1700000001 - 10\nb.2 0 h 0\nm.3 0 - 300\n"
		 "z.4 1700000004 h 400\n" },
	{ "same values leave it clean", SC_UNCHANGED,
	  HEADER "a 5 h 7\n", HEADER "a 5 h 7\n" },
	{ "forget", SC_FORGET, HEADER "a 1 - 1\nb 2 - 2\nc 3 - 3\n",
	  HEADER "a 1 - 1\nc 3 - 3\n" },
	{ "prune", SC_PRUNE,
	  HEADER "a 1 - 1\nb 2 - 2\nc 3 - 3\nd 4 h 4\n",
	  HEADER "b 2 - 2\nd 4 h 4\n" },
	{ "many entries, forget and prune", SC_MANY, NULL, NULL },
	{ "bad bases refused", SC_BAD_BASES, HEADER "a 1 - 1\n",
	  HEADER "a 1 - 1\n" },
	{ "temp files of a crash", SC_CRASH_TEMP, HEADER "a 1 - 1\n",
	  HEADER "a 1 - 1\nb 0 h 0\n" },
	{ "over the size limit", SC_TOO_BIG, NULL, NULL },
	{ "read-only directory keeps the old file", SC_READONLY_DIR,
	  HEADER "a 1 - 1\n", HEADER "a 1 - 1\n" },
};

static struct shim_state *load_ok(size_t idx, const char *name)
{
	struct shim_state *st;
	char error[512];

	if (shim_state_load(state_path, &st, error, sizeof(error)) < 0)
		case_fail(idx, name, "load: %s", error);
	return st;
}

static void save_ok(size_t idx, const char *name, struct shim_state *st)
{
	char error[512];

	if (shim_state_save(st, true, error, sizeof(error)) < 0)
		case_fail(idx, name, "save: %s", error);
	if (shim_state_dirty(st))
		case_fail(idx, name, "dirty after save");
}

static void sc_round_trip(size_t idx, const char *name, struct shim_state *st)
{
	struct shim_state *st2;

	assert_int_equal(shim_state_set_size(st, "z.4", 400), 0);
	assert_int_equal(shim_state_set_hidden(st, "b.2", true), 0);
	assert_int_equal(shim_state_set_retrieved(st, "a.1", 1700000001), 0);
	assert_int_equal(shim_state_set_size(st, "m.3", 300), 0);
	assert_int_equal(shim_state_set_retrieved(st, "z.4", 1700000004), 0);
	assert_int_equal(shim_state_set_hidden(st, "z.4", true), 0);
	assert_int_equal(shim_state_set_size(st, "a.1", 10), 0);
	if (!shim_state_dirty(st))
		case_fail(idx, name, "not dirty after set");
	save_ok(idx, name, st);
	/* a clean state is not written again */
	assert_int_equal(unlink(state_path), 0);
	save_ok(idx, name, st);
	if (file_exists(state_path))
		case_fail(idx, name, "a clean state was written");
	assert_int_equal(shim_state_set_size(st, "a.1", 11), 0);
	assert_int_equal(shim_state_set_size(st, "a.1", 10), 0);
	save_ok(idx, name, st);
	st2 = load_ok(idx, name);
	if (shim_state_get(st2, "z.4") == NULL ||
	    shim_state_get(st2, "z.4")->size != 400 ||
	    !shim_state_get(st2, "z.4")->hidden ||
	    shim_state_get(st2, "z.4")->first_retrieved_at != 1700000004)
		case_fail(idx, name, "z.4 not reloaded");
	shim_state_free(&st2);
}

static void sc_unchanged(size_t idx, const char *name, struct shim_state *st)
{
	assert_int_equal(shim_state_set_retrieved(st, "a", 5), 0);
	assert_int_equal(shim_state_set_hidden(st, "a", true), 0);
	assert_int_equal(shim_state_set_size(st, "a", 7), 0);
	shim_state_forget(st, "nonexistent");
	if (shim_state_dirty(st))
		case_fail(idx, name, "dirty without a change");
	assert_int_equal(shim_state_set_retrieved(st, "a", -1), -1);
}

/* Random changes to thousands of entries, checked against a plain
   array after each phase and after a reload. */
#define MANY 5000

static void many_check(size_t idx, const char *name,
		       const struct shim_state *st, const uint64_t *ref)
{
	const struct shim_state_entry *e;
	char base[32];
	unsigned int i;

	for (i = 0; i < MANY; i++) {
		snprintf(base, sizeof(base), "%u.M%u.host", i * 7919 % MANY,
			 i);
		e = shim_state_get(st, base);
		if ((e == NULL) != (ref[i] == 0) ||
		    (e != NULL && e->size != ref[i]))
			case_fail(idx, name, "%s: %s, expected %" PRIu64, base,
				  e == NULL ? "missing" : "present", ref[i]);
	}
}

static void sc_many(size_t idx, const char *name, struct shim_state *st)
{
	static uint64_t ref[MANY];
	static char bases[MANY][32];
	const char *keep[MANY];
	struct shim_state *st2;
	unsigned int i, n = 0;

	for (i = 0; i < MANY; i++) {
		snprintf(bases[i], sizeof(bases[i]), "%u.M%u.host",
			 i * 7919 % MANY, i);
		ref[i] = i + 1;
		assert_int_equal(shim_state_set_size(st, bases[i], ref[i]), 0);
	}
	many_check(idx, name, st, ref);
	for (i = 0; i < MANY; i += 3) {
		shim_state_forget(st, bases[i]);
		ref[i] = 0;
	}
	many_check(idx, name, st, ref);
	for (i = 0; i < MANY; i++) {
		if (i % 5 != 0)
			keep[n++] = bases[i];
		else
			ref[i] = 0;
	}
	shim_state_prune(st, keep, n);
	many_check(idx, name, st, ref);
	save_ok(idx, name, st);
	st2 = load_ok(idx, name);
	many_check(idx, name, st2, ref);
	shim_state_prune(st2, NULL, 0);
	memset(ref, 0, sizeof(ref));
	many_check(idx, name, st2, ref);
	shim_state_free(&st2);
}

static void sc_bad_bases(size_t idx, const char *name, struct shim_state *st)
{
	static const char *const bad[] = {
		"", "a b", "a/b", "a\tb", "a\nb", "a\x01", "a\x7f", "/", " "
	};
	char long_base[LONG_BASE_LEN + 2];
	unsigned int i;

	for (i = 0; i < N_ELEMENTS(bad); i++) {
		if (shim_state_set_size(st, bad[i], 1) != -1 ||
		    shim_state_set_hidden(st, bad[i], true) != -1 ||
		    shim_state_set_retrieved(st, bad[i], 1) != -1)
			case_fail(idx, name, "bad base %u accepted", i);
	}
	memset(long_base, 'x', sizeof(long_base) - 1);
	long_base[LONG_BASE_LEN + 1] = '\0';
	if (shim_state_set_size(st, long_base, 1) != -1)
		case_fail(idx, name, "a base of %d octets accepted",
			  LONG_BASE_LEN + 1);
	if (shim_state_dirty(st))
		case_fail(idx, name, "dirty after refusals");
	/* the longest base makes a line the parser takes back */
	long_base[LONG_BASE_LEN] = '\0';
	assert_int_equal(shim_state_set_size(st, long_base, UINT64_MAX), 0);
	assert_int_equal(shim_state_set_retrieved(st, long_base, INT64_MAX),
			 0);
	assert_int_equal(shim_state_set_hidden(st, long_base, true), 0);
	save_ok(idx, name, st);
	shim_state_free(&st);
	st = load_ok(idx, name);
	if (shim_state_get(st, long_base) == NULL)
		case_fail(idx, name, "the longest base not reloaded");
	shim_state_forget(st, long_base);
	save_ok(idx, name, st);
	shim_state_free(&st);
}

static void sc_crash_temp(size_t idx, const char *name, struct shim_state *st)
{
	char other[PATH_SIZE + 32], own[PATH_SIZE + 32];
	char *content;

	/* before the load: a crashed writer's half file is not read */
	snprintf(other, sizeof(other), "%s.tmp.999999", state_path);
	snprintf(own, sizeof(own), "%s.tmp.%ld", state_path, (long)getpid());
	write_file(idx, name, other, "garbage", 7);
	write_file(idx, name, own, "garbage", 7);
	shim_state_free(&st);
	st = load_ok(idx, name);
	if (shim_state_get(st, "a") == NULL)
		case_fail(idx, name, "old entry lost");
	assert_int_equal(shim_state_set_hidden(st, "b", true), 0);
	save_ok(idx, name, st);
	if (file_exists(own))
		case_fail(idx, name, "own temp file left");
	content = read_file(other);
	if (content == NULL || strcmp(content, "garbage") != 0)
		case_fail(idx, name, "another process's temp file touched");
	free(content);
	shim_state_free(&st);
}

static void sc_too_big(size_t idx, const char *name)
{
	struct shim_state *st;
	char error[512] = "";
	int fd;

	fd = open(state_path, O_WRONLY | O_CREAT, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, HEADER, strlen(HEADER)), strlen(HEADER));
	assert_int_equal(ftruncate(fd, SHIM_STATE_SIZE_MAX + 1), 0);
	close(fd);
	if (shim_state_load(state_path, &st, error, sizeof(error)) != -1 ||
	    strstr(error, state_path) == NULL ||
	    strstr(error, "larger") == NULL)
		case_fail(idx, name, "loaded, or error \"%s\"", error);
}

/* A save that cannot create its temp file fails and keeps the old file.
   root ignores directory permissions: then the save runs in a child
   that has dropped to nobody. */
static void sc_readonly_dir(size_t idx, const char *name,
			    struct shim_state *st)
{
	char error[512] = "";
	int status, ret;
	pid_t pid;

	assert_int_equal(shim_state_set_hidden(st, "b", true), 0);
	if (geteuid() != 0) {
		assert_int_equal(chmod(test_dir, 0500), 0);
		ret = shim_state_save(st, true, error, sizeof(error));
		assert_int_equal(chmod(test_dir, 0700), 0);
		if (ret != -1 || strstr(error, state_path) == NULL)
			case_fail(idx, name, "save %d (%s)", ret, error);
		if (!shim_state_dirty(st))
			case_fail(idx, name, "clean after a failed save");
		return;
	}
	assert_int_equal(chmod(test_dir, 0755), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		if (setgid(65534) < 0 || setuid(65534) < 0)
			_exit(2);
		ret = shim_state_save(st, true, error, sizeof(error));
		_exit(ret == -1 && strstr(error, state_path) != NULL &&
		      shim_state_dirty(st) ? 0 : 1);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		case_fail(idx, name, "child status %d", status);
}

static void test_scenario(void **state)
{
	const struct scenario_case *c = *state;
	size_t idx = (size_t)(c - scenario_cases);
	const char *bases[] = { "d", "x", "b" };
	struct shim_state *st = NULL;
	char *content;

	make_test_dir(idx, c->name);
	if (c->before != NULL)
		write_file(idx, c->name, state_path, c->before,
			   strlen(c->before));
	if (c->sc != SC_TOO_BIG)
		st = load_ok(idx, c->name);
	switch (c->sc) {
	case SC_ROUND_TRIP:
		sc_round_trip(idx, c->name, st);
		break;
	case SC_UNCHANGED:
		sc_unchanged(idx, c->name, st);
		save_ok(idx, c->name, st);
		break;
	case SC_FORGET:
		shim_state_forget(st, "b");
		shim_state_forget(st, "b");
		if (shim_state_get(st, "b") != NULL)
			case_fail(idx, c->name, "b still there");
		save_ok(idx, c->name, st);
		break;
	case SC_PRUNE:
		shim_state_prune(st, bases, N_ELEMENTS(bases));
		save_ok(idx, c->name, st);
		break;
	case SC_MANY:
		sc_many(idx, c->name, st);
		break;
	case SC_BAD_BASES:
		sc_bad_bases(idx, c->name, st);
		st = NULL;
		break;
	case SC_CRASH_TEMP:
		sc_crash_temp(idx, c->name, st);
		st = NULL;
		break;
	case SC_TOO_BIG:
		sc_too_big(idx, c->name);
		break;
	case SC_READONLY_DIR:
		sc_readonly_dir(idx, c->name, st);
		break;
	}
	shim_state_free(&st);
	if (c->after != NULL) {
		content = read_file(state_path);
		if (content == NULL || strcmp(content, c->after) != 0)
			case_fail(idx, c->name, "file \"%s\", expected \"%s\"",
				  content != NULL ? content : "(none)",
				  c->after);
		free(content);
	}
}

int main(void)
{
	int failed = 0;

	failed += RUN_TABLE_TEARDOWN("shim_state_load", test_load,
				     teardown_dir, load_cases);
	failed += RUN_TABLE_TEARDOWN("shim_state scenarios", test_scenario,
				     teardown_dir, scenario_cases);
	return failed == 0 ? 0 : 1;
}
