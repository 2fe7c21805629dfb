/* pop3-retentiond's Maildir: RETR and TOP streams (CRLF, dot-stuffing,
   chunk boundaries, the terminator, whole()) checked against the CRLF
   version of each file and its listed size; scans (new/ to cur/, order,
   UIDLs, sizes from ",W=", the host's cache or the file; the oldest
   SHIM_MESSAGES_MAX of a larger maildrop); the lock within a process
   and across processes; expunge and move into Maildir++ folders;
   Message-ID. One cmocka test per table row, each in a fresh temporary
   directory. */

#include "pop3-retention-config.h"
#include "shim-maildir.h"
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
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PATH_SIZE 1024
#define STREAM_BUF (2 * SHIM_READ_CHUNK + 5)
#define MiB (1024 * 1024)
#define FILES_MAX 6

/* the current row's directory, removed by the teardown */
static char test_dir[64];

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
	if (test_dir[0] != '\0')
		(void)test_remove_tree(test_dir);
	test_dir[0] = '\0';
	return 0;
}

static void make_test_dir(size_t idx, const char *name)
{
	snprintf(test_dir, sizeof(test_dir), "/tmp/test-shim-maildir.XXXXXX");
	if (mkdtemp(test_dir) == NULL) {
		test_dir[0] = '\0';
		case_fail(idx, name, "mkdtemp: %s", strerror(errno));
	}
}

static void write_file(size_t idx, const char *name, const char *path,
		       const char *data, size_t len, time_t mtime)
{
	struct timeval tv[2];
	FILE *f;

	f = fopen(path, "w");
	if (f == NULL || fwrite(data, 1, len, f) != len || fclose(f) != 0)
		case_fail(idx, name, "writing %s: %s", path, strerror(errno));
	if (mtime != 0) {
		tv[0].tv_sec = tv[1].tv_sec = mtime;
		tv[0].tv_usec = tv[1].tv_usec = 0;
		if (utimes(path, tv) < 0)
			case_fail(idx, name, "utimes(%s): %s", path,
				  strerror(errno));
	}
}

static bool file_exists(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0;
}

/* ---- streams ---- */

enum gen {
	GEN_TEXT,
	/* a '.' line starting at the first octet of the second chunk */
	GEN_DOT_AT_BOUNDARY,
	/* "\r" the last octet of the first chunk, "\n" the first of the
	   next, and then a '.' line */
	GEN_CRLF_AT_BOUNDARY,
	/* a line of 3 chunks (no line end in a whole chunk) */
	GEN_LONG_LINE,
	/* 1 MiB of LF lines of varied length, some starting with '.' */
	GEN_1MIB,
};

struct stream_case {
	const char *name;
	enum gen gen;
	const char *text;
	/* -1: RETR */
	long top;
	/* for TOP: the expected response (without dot-stuffing undone) */
	const char *expected;
	bool whole;
	/* the caller's buffer, 0 for STREAM_BUF */
	size_t buf_size;
};

#define HDR "From: a@example.org\nSubject: s\n"

static const struct stream_case stream_cases[] = {
	{ "RETR empty file", GEN_TEXT, "", -1, NULL, true, 0 },
	{ "RETR LF file", GEN_TEXT, HDR "\nbody 1\nbody 2\n", -1, NULL, true,
	  0 },
	{ "RETR CRLF file", GEN_TEXT,
	  "From: a@example.org\r\n\r\nbody\r\n", -1, NULL, true, 0 },
	{ "RETR mixed line ends and a bare CR", GEN_TEXT,
	  "A: 1\r\nB: 2\n\r\nx\ry\n", -1, NULL, true, 0 },
	{ "RETR no final newline", GEN_TEXT, HDR "\nlast line", -1, NULL,
	  true, 0 },
	{ "RETR only a '.'", GEN_TEXT, ".", -1, NULL, true, 0 },
	{ "RETR dot lines", GEN_TEXT,
	  ".starts the header\n\n.\n..\n.x\n x.\n.\r\n", -1, NULL, true, 0 },
	{ "RETR header only, no blank line", GEN_TEXT, HDR, -1, NULL, true,
	  0 },
	{ "RETR '.' line across a chunk boundary", GEN_DOT_AT_BOUNDARY, NULL,
	  -1, NULL, true, 0 },
	{ "RETR CRLF across a chunk boundary", GEN_CRLF_AT_BOUNDARY, NULL, -1,
	  NULL, true, 0 },
	{ "RETR a line longer than a chunk", GEN_LONG_LINE, NULL, -1, NULL,
	  true, 0 },
	{ "RETR 1 MiB", GEN_1MIB, NULL, -1, NULL, true, 0 },
	{ "RETR 1 MiB through a 7-octet buffer", GEN_1MIB, NULL, -1, NULL,
	  true, 7 },
	{ "RETR dot lines through a 9-octet buffer", GEN_TEXT,
	  "a\n.b\n..\n.\nc", -1, NULL, true, 9 },
	{ "TOP 0", GEN_TEXT, HDR "\nb1\nb2\n", 0,
	  "From: a@example.org\r\nSubject: s\r\n\r\n.\r\n", false, 0 },
	{ "TOP 1", GEN_TEXT, HDR "\nb1\n.b2\n", 1,
	  "From: a@example.org\r\nSubject: s\r\n\r\nb1\r\n.\r\n", false, 0 },
	{ "TOP 1 of one body line", GEN_TEXT, HDR "\nb1\n", 1,
	  "From: a@example.org\r\nSubject: s\r\n\r\nb1\r\n.\r\n", true, 0 },
	{ "TOP 2 stuffs a dot line", GEN_TEXT, HDR "\nb1\n.b2\nb3\n", 2,
	  "From: a@example.org\r\nSubject: s\r\n\r\nb1\r\n..b2\r\n.\r\n",
	  false, 0 },
	{ "TOP huge", GEN_TEXT, HDR "\nb1\nb2", 1000000,
	  "From: a@example.org\r\nSubject: s\r\n\r\nb1\r\nb2\r\n.\r\n", true,
	  0 },
	{ "TOP 0 of a header-only message", GEN_TEXT, HDR, 0,
	  "From: a@example.org\r\nSubject: s\r\n.\r\n", true, 0 },
	{ "TOP 0 of an empty body", GEN_TEXT, HDR "\n", 0,
	  "From: a@example.org\r\nSubject: s\r\n\r\n.\r\n", true, 0 },
	{ "TOP 0, CRLF blank line", GEN_TEXT, "A: 1\r\n\r\nb\r\n", 0,
	  "A: 1\r\n\r\n.\r\n", false, 0 },
	{ "TOP 1, body without a final newline", GEN_TEXT, "A: 1\n\nb", 1,
	  "A: 1\r\n\r\nb\r\n.\r\n", true, 0 },
	{ "TOP huge of 1 MiB", GEN_1MIB, NULL, 1000000000L, NULL, true, 0 },
	{ "TOP 3 of 1 MiB", GEN_1MIB, NULL, 3, NULL, false, 0 },
};

/* The message text of a case (malloc'ed) and its length. */
static char *gen_text(const struct stream_case *c, size_t *len_r)
{
	size_t len, i, line = 0;
	char *text;

	switch (c->gen) {
	case GEN_TEXT:
		*len_r = strlen(c->text);
		text = strdup(c->text);
		assert_non_null(text);
		return text;
	case GEN_DOT_AT_BOUNDARY:
	case GEN_CRLF_AT_BOUNDARY:
	case GEN_LONG_LINE:
		len = 3 * SHIM_READ_CHUNK + 20;
		break;
	case GEN_1MIB:
	default:
		len = MiB;
		break;
	}
	text = malloc(len + 1);
	assert_non_null(text);
	memcpy(text, "Subject: t\n\n", 12);
	for (i = 12; i < len; i++) {
		/* lines of 1 to 97 octets, every 7th starting with '.' */
		if (c->gen == GEN_LONG_LINE)
			text[i] = 'a' + (char)(i % 26);
		else if (line % 97 == 96 || (i * 31) % 113 == 0)
			text[i] = '\n';
		else if (line == 0 && (i % 7) == 0)
			text[i] = '.';
		else
			text[i] = 'a' + (char)(i % 26);
		line = text[i] == '\n' ? 0 : line + 1;
	}
	if (c->gen == GEN_DOT_AT_BOUNDARY) {
		memcpy(text + SHIM_READ_CHUNK - 1, "\n.x\n", 4);
	} else if (c->gen == GEN_CRLF_AT_BOUNDARY) {
		memcpy(text + SHIM_READ_CHUNK - 1, "\r\n..\n", 5);
	}
	text[len - 1] = '\n';
	*len_r = len;
	return text;
}

/* Every "\n" not preceded by "\r" as "\r\n". */
static char *crlf(const char *text, size_t len, size_t *len_r)
{
	char *out = malloc(2 * len + 1);
	size_t i, n = 0;

	assert_non_null(out);
	for (i = 0; i < len; i++) {
		if (text[i] == '\n' && (i == 0 || text[i - 1] != '\r'))
			out[n++] = '\r';
		out[n++] = text[i];
	}
	*len_r = n;
	return out;
}

/* The response of message 0. Returns whole(). */
static bool stream_all(size_t idx, const char *name, struct shim_maildir *md,
		       long top, size_t buf_size, char **out_r, size_t *len_r)
{
	char error[512], *buf, *out, *bigger;
	size_t len = 0, alloc = buf_size;
	struct shim_msg_stream *stream;
	ssize_t n;
	bool whole;

	stream = shim_msg_stream_open(md, 0, top, error, sizeof(error));
	if (stream == NULL)
		case_fail(idx, name, "stream_open: %s", error);
	buf = malloc(buf_size);
	out = malloc(alloc);
	assert_non_null(buf);
	assert_non_null(out);
	while ((n = shim_msg_stream_read(stream, buf, buf_size, error,
					 sizeof(error))) > 0) {
		if ((size_t)n > buf_size)
			case_fail(idx, name, "read %zd > %zu", n, buf_size);
		if (len + (size_t)n > alloc) {
			alloc = (len + (size_t)n) * 2;
			bigger = realloc(out, alloc);
			assert_non_null(bigger);
			out = bigger;
		}
		memcpy(out + len, buf, (size_t)n);
		len += (size_t)n;
	}
	free(buf);
	if (n < 0)
		case_fail(idx, name, "stream_read: %s", error);
	/* stays finished */
	if (shim_msg_stream_read(stream, error, 8, error, sizeof(error)) != 0)
		case_fail(idx, name, "read after the end is not 0");
	whole = shim_msg_stream_whole(stream);
	shim_msg_stream_close(&stream);
	assert_null(stream);
	*out_r = out;
	*len_r = len;
	return whole;
}

/* Undo dot-stuffing of a response without its terminator; fails on a
   line that starts with a single '.'. */
static size_t undot(size_t idx, const char *name, char *s, size_t len)
{
	size_t i, n = 0;
	bool line_start = true;

	for (i = 0; i < len; i++) {
		if (line_start && s[i] == '.') {
			if (i + 1 >= len || s[i + 1] != '.')
				case_fail(idx, name,
					  "unstuffed '.' at offset %zu", i);
			i++;
		}
		line_start = s[i] == '\n';
		s[n++] = s[i];
	}
	return n;
}

static void test_stream(void **state)
{
	const struct stream_case *c = *state;
	size_t idx = (size_t)(c - stream_cases);
	size_t buf_size = c->buf_size != 0 ? c->buf_size : STREAM_BUF;
	char path[PATH_SIZE], error[512], *text, *want, *out;
	size_t text_len, want_len, out_len, term_len;
	struct shim_maildir *md;
	bool whole;

	make_test_dir(idx, c->name);
	md = shim_maildir_open(test_dir, error, sizeof(error));
	if (md == NULL)
		case_fail(idx, c->name, "open: %s", error);
	text = gen_text(c, &text_len);
	snprintf(path, sizeof(path), "%s/new/1700000000.M1P1.test", test_dir);
	write_file(idx, c->name, path, text, text_len, 0);
	if (shim_maildir_scan(md, NULL, NULL, error, sizeof(error)) < 0 ||
	    shim_maildir_count(md) != 1)
		case_fail(idx, c->name, "scan: %s", error);

	whole = stream_all(idx, c->name, md, c->top, buf_size, &out,
			   &out_len);
	if (whole != c->whole)
		case_fail(idx, c->name, "whole() %d, expected %d", whole,
			  c->whole);
	if (c->expected != NULL) {
		if (out_len != strlen(c->expected) ||
		    memcmp(out, c->expected, out_len) != 0)
			case_fail(idx, c->name, "got \"%.*s\"", (int)out_len,
				  out);
	} else if (c->top < 0 || c->whole) {
		/* RETR (or a TOP of everything): the CRLF file, listed size */
		want = crlf(text, text_len, &want_len);
		term_len = text_len == 0 || text[text_len - 1] == '\n' ? 3 : 5;
		if (out_len < term_len ||
		    memcmp(out + out_len - term_len, "\r\n.\r\n" + 5 - term_len,
			   term_len) != 0)
			case_fail(idx, c->name, "bad terminator");
		out_len = undot(idx, c->name, out, out_len - term_len);
		if (out_len != want_len || memcmp(out, want, want_len) != 0)
			case_fail(idx, c->name, "%zu octets differ from the "
				  "%zu of the CRLF file", out_len, want_len);
		if (shim_maildir_msg(md, 0)->size != want_len)
			case_fail(idx, c->name, "listed size %" PRIu64
				  ", sent %zu", shim_maildir_msg(md, 0)->size,
				  want_len);
		free(want);
	} else if (out_len < 3 || memcmp(out + out_len - 3, ".\r\n", 3) != 0 ||
		   out_len >= text_len) {
		case_fail(idx, c->name, "partial TOP of %zu octets", out_len);
	}
	free(out);
	free(text);
	shim_maildir_close(&md);
	assert_null(md);
}

/* ---- scans ---- */

struct scan_file {
	/* "new", "cur", "tmp", or "dir" (a directory in cur/), "link" (a
	   symbolic link in cur/) */
	const char *where;
	const char *fname;
	time_t mtime;
	const char *content;
};

struct scan_msg {
	const char *base;
	/* NULL: the base; "HASH": 40 hex digits */
	const char *uidl;
	uint64_t size;
};

struct scan_case {
	const char *name;
	struct scan_file files[FILES_MAX];
	/* in listing order */
	struct scan_msg msgs[FILES_MAX];
	unsigned int count;
	/* files in cur/ afterwards */
	const char *cur[FILES_MAX];
	bool use_lookup;
};

static const struct scan_case scan_cases[] = {
	{ "empty maildir", { { NULL } }, { { NULL } }, 0, { NULL }, false },
	{ "new moves to cur with :2,",
	  { { "new", "1.M1.h", 100, "a\n" },
	    { "new", "2.M2.h:2,S", 200, "bb\n" },
	    { "cur", "0.M0.h:2,S", 50, "" },
	    { "tmp", "3.M3.h", 10, "in delivery\n" },
	    { "new", ".hidden", 10, "x\n" },
	    { "cur", ".hidden2", 10, "x\n" } },
	  { { "0.M0.h", NULL, 0 }, { "1.M1.h", NULL, 3 },
	    { "2.M2.h", NULL, 4 } },
	  3, { "0.M0.h:2,S", "1.M1.h:2,", "2.M2.h:2,S", ".hidden2" },
	  false },
	{ "sorted by mtime, then base",
	  { { "cur", "b:2,", 100, "x" }, { "cur", "a:2,", 100, "x\n" },
	    { "cur", "c:2,", 99, "" } },
	  { { "c", NULL, 0 }, { "a", NULL, 3 }, { "b", NULL, 1 } },
	  3, { NULL }, false },
	{ "size from ,W=",
	  { { "cur", "1.M1.h,S=5,W=1234:2,S", 1, "x\n" },
	    { "cur", "2.M2.h,W=77,S=5:2,", 2, "x\n" },
	    { "cur", "3.M3.h,W=x:2,", 3, "x\n" },
	    { "cur", "4.M4.h,W=:2,", 4, "x\n" } },
	  { { "1.M1.h,S=5,W=1234", NULL, 1234 },
	    { "2.M2.h,W=77,S=5", NULL, 77 }, { "3.M3.h,W=x", NULL, 3 },
	    { "4.M4.h,W=", NULL, 3 } },
	  4, { NULL }, false },
	{ "size from the host's cache first",
	  { { "cur", "cached:2,", 1, "x\n" },
	    { "cur", "cached,W=9:2,", 2, "x\n" },
	    { "cur", "other:2,", 3, "x\n" } },
	  { { "cached", NULL, 4242 }, { "cached,W=9", NULL, 4242 },
	    { "other", NULL, 3 } },
	  3, { NULL }, true },
	{ "hashed UIDLs",
	  { { "cur", "with space:2,", 1, "" },
	    { "cur", "a123456789b123456789c123456789d123456789e123456789"
		     "f123456789g123456789h:2,", 2, "" },
	    { "cur", "a123456789b123456789c123456789d123456789e123456789"
		     "f123456789g123456789:2,", 3, "" },
	    { "cur", "caf\xc3\xa9:2,", 4, "" } },
	  { { "with space", "HASH", 0 },
	    { "a123456789b123456789c123456789d123456789e123456789"
	      "f123456789g123456789h", "HASH", 0 },
	    { "a123456789b123456789c123456789d123456789e123456789"
	      "f123456789g123456789", NULL, 0 },
	    { "caf\xc3\xa9", "HASH", 0 } },
	  4, { NULL }, false },
	{ "one base twice is listed once",
	  { { "cur", "dup:2,S", 1, "x\n" }, { "cur", "dup:2,", 2, "x\n" },
	    { "new", "dup", 3, "x\n" } },
	  { { "dup", NULL, 3 } }, 1, { NULL }, false },
	{ "a name in cur/ without an info part",
	  { { "cur", "noinfo", 1, "abc" }, { "cur", "x:", 2, "" } },
	  { { "noinfo", NULL, 3 }, { "x", NULL, 0 } }, 2,
	  { "noinfo", "x:" }, false },
	{ "directories and symbolic links in cur/ skipped",
	  { { "dir", "sub:2,", 1, NULL }, { "link", "ln:2,", 1, NULL },
	    { "cur", "m:2,", 5, "" } },
	  { { "m", NULL, 0 } }, 1, { NULL }, false },
};

static int lookup_4242(void *context, const char *base, uint64_t *size_r)
{
	unsigned int *calls = context;

	(*calls)++;
	if (strncmp(base, "cached", 6) != 0)
		return 0;
	*size_r = 4242;
	return 1;
}

static void scan_setup(size_t idx, const struct scan_case *c)
{
	const struct scan_file *f;
	char path[PATH_SIZE];
	unsigned int i;

	for (i = 0; i < FILES_MAX && c->files[i].where != NULL; i++) {
		f = &c->files[i];
		if (strcmp(f->where, "dir") == 0) {
			snprintf(path, sizeof(path), "%s/cur/%s", test_dir,
				 f->fname);
			assert_int_equal(mkdir(path, 0700), 0);
		} else if (strcmp(f->where, "link") == 0) {
			snprintf(path, sizeof(path), "%s/cur/%s", test_dir,
				 f->fname);
			assert_int_equal(symlink("/etc/passwd", path), 0);
		} else {
			snprintf(path, sizeof(path), "%s/%s/%s", test_dir,
				 f->where, f->fname);
			write_file(idx, c->name, path, f->content,
				   strlen(f->content), f->mtime);
		}
	}
}

static bool is_hex40(const char *s)
{
	return strlen(s) == 40 && strspn(s, "0123456789abcdef") == 40;
}

static void test_scan(void **state)
{
	const struct scan_case *c = *state;
	size_t idx = (size_t)(c - scan_cases);
	const struct shim_maildir_msg *m;
	char error[512], path[PATH_SIZE], uidls[FILES_MAX][SHIM_UIDL_MAX + 1];
	struct shim_maildir *md;
	unsigned int i, round, calls = 0;

	make_test_dir(idx, c->name);
	md = shim_maildir_open(test_dir, error, sizeof(error));
	if (md == NULL)
		case_fail(idx, c->name, "open: %s", error);
	scan_setup(idx, c);
	/* twice: UIDLs and order are stable */
	for (round = 0; round < 2; round++) {
		if (shim_maildir_scan(md, c->use_lookup ? lookup_4242 : NULL,
				      &calls, error, sizeof(error)) < 0)
			case_fail(idx, c->name, "scan: %s", error);
		if (shim_maildir_count(md) != c->count)
			case_fail(idx, c->name, "%u messages, expected %u",
				  shim_maildir_count(md), c->count);
		for (i = 0; i < c->count; i++) {
			m = shim_maildir_msg(md, i);
			if (strcmp(m->base, c->msgs[i].base) != 0)
				case_fail(idx, c->name, "message %u is %s, "
					  "expected %s", i, m->base,
					  c->msgs[i].base);
			if (m->size != c->msgs[i].size)
				case_fail(idx, c->name, "message %u size %"
					  PRIu64 ", expected %" PRIu64, i,
					  m->size, c->msgs[i].size);
			if (c->msgs[i].uidl == NULL ?
			    strcmp(m->uidl, m->base) != 0 : !is_hex40(m->uidl))
				case_fail(idx, c->name, "message %u UIDL %s", i,
					  m->uidl);
			if (round == 0)
				snprintf(uidls[i], sizeof(uidls[i]), "%s",
					 m->uidl);
			else if (strcmp(uidls[i], m->uidl) != 0)
				case_fail(idx, c->name, "UIDL %u changed", i);
		}
	}
	if (shim_maildir_msg(md, c->count) != NULL)
		case_fail(idx, c->name, "a message past the end");
	if (c->use_lookup && calls == 0)
		case_fail(idx, c->name, "size_lookup not called");
	for (i = 0; i < FILES_MAX && c->cur[i] != NULL; i++) {
		snprintf(path, sizeof(path), "%s/cur/%s", test_dir, c->cur[i]);
		if (!file_exists(path))
			case_fail(idx, c->name, "%s missing", path);
	}
	if (strcmp(shim_maildir_path(md), test_dir) != 0)
		case_fail(idx, c->name, "path %s", shim_maildir_path(md));
	shim_maildir_close(&md);
}

/* ---- the listing limit ---- */

struct limit_case {
	const char *name;
	/* files beyond SHIM_MESSAGES_MAX */
	unsigned int extra;
};

static const struct limit_case limit_cases[] = {
	{ "5 over the limit: the 5 newest wait", 5 },
};

/* file i of a limit case; the "extra" newest are every 1000th */
static bool limit_newest(unsigned int i, unsigned int extra)
{
	return i % 1000 == 999 && i / 1000 < extra;
}

static void test_limit(void **state)
{
	const struct limit_case *c = *state;
	size_t idx = (size_t)(c - limit_cases);
	unsigned int i, count = SHIM_MESSAGES_MAX + c->extra;
	const struct shim_maildir_msg *m, *prev = NULL;
	char error[512], path[PATH_SIZE];
	struct timeval tv[2];
	struct shim_maildir *md;
	int fd;

	make_test_dir(idx, c->name);
	md = shim_maildir_open(test_dir, error, sizeof(error));
	assert_non_null(md);
	/* the newest get an mtime in the future, the rest have now's */
	tv[0].tv_sec = tv[1].tv_sec = time(NULL) + 3600;
	tv[0].tv_usec = tv[1].tv_usec = 0;
	for (i = 0; i < count; i++) {
		snprintf(path, sizeof(path), "%s/cur/m%06u,W=1:2,", test_dir,
			 i);
		fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
		if (fd < 0)
			case_fail(idx, c->name, "%s: %s", path,
				  strerror(errno));
		close(fd);
		if (limit_newest(i, c->extra) && utimes(path, tv) < 0)
			case_fail(idx, c->name, "utimes: %s", strerror(errno));
	}
	if (shim_maildir_scan(md, NULL, NULL, error, sizeof(error)) < 0)
		case_fail(idx, c->name, "scan: %s", error);
	if (shim_maildir_count(md) != SHIM_MESSAGES_MAX)
		case_fail(idx, c->name, "%u listed", shim_maildir_count(md));
	for (i = 0; i < shim_maildir_count(md); i++) {
		m = shim_maildir_msg(md, i);
		if (c->extra > 0 && m->arrived_at == tv[0].tv_sec)
			case_fail(idx, c->name, "%s listed", m->base);
		if (prev != NULL &&
		    (prev->arrived_at > m->arrived_at ||
		     (prev->arrived_at == m->arrived_at &&
		      strcmp(prev->base, m->base) >= 0)))
			case_fail(idx, c->name, "%s before %s", prev->base,
				  m->base);
		prev = m;
	}
	shim_maildir_close(&md);
}

/* ---- the lock ---- */

enum lock_holder {
	/* a second maildir object of this process */
	HOLDER_SAME_PROCESS,
	/* a child process, which then exits */
	HOLDER_CHILD_EXITS,
	/* a child process, killed with SIGKILL */
	HOLDER_CHILD_KILLED,
	/* our own first object, unlocked again */
	HOLDER_UNLOCKED,
	/* our own first object, closed */
	HOLDER_CLOSED,
};

struct lock_case {
	const char *name;
	enum lock_holder holder;
};

static const struct lock_case lock_cases[] = {
	{ "two sessions of one process", HOLDER_SAME_PROCESS },
	{ "another process, which exits", HOLDER_CHILD_EXITS },
	{ "another process, killed", HOLDER_CHILD_KILLED },
	{ "unlock releases", HOLDER_UNLOCKED },
	{ "close releases", HOLDER_CLOSED },
};

static void lock_expect(size_t idx, const char *name, struct shim_maildir *md,
			int expected)
{
	char error[512] = "";
	int ret = shim_maildir_lock(md, error, sizeof(error));

	if (ret != expected)
		case_fail(idx, name, "lock %d, expected %d (%s)", ret,
			  expected, error);
}

/* A child that locks the maildrop, says so, and holds the lock until
   the parent closes its end of the socket (or kills it). */
static pid_t lock_child(size_t idx, const char *name, int *ready_fd_r)
{
	struct shim_maildir *md;
	char error[512], c = 'x';
	int fds[2];
	pid_t pid;

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(fds[0]);
		md = shim_maildir_open(test_dir, error, sizeof(error));
		if (md == NULL ||
		    shim_maildir_lock(md, error, sizeof(error)) != 1)
			_exit(1);
		if (write(fds[1], &c, 1) != 1)
			_exit(1);
		while (read(fds[1], &c, 1) > 0)
			;
		shim_maildir_close(&md);
		_exit(0);
	}
	close(fds[1]);
	if (read(fds[0], &c, 1) != 1)
		case_fail(idx, name, "child could not lock");
	*ready_fd_r = fds[0];
	return pid;
}

static void test_lock(void **state)
{
	const struct lock_case *c = *state;
	size_t idx = (size_t)(c - lock_cases);
	struct shim_maildir *md1, *md2;
	char error[512];
	int ready_fd, status;
	pid_t pid;

	make_test_dir(idx, c->name);
	md1 = shim_maildir_open(test_dir, error, sizeof(error));
	md2 = shim_maildir_open(test_dir, error, sizeof(error));
	assert_non_null(md1);
	assert_non_null(md2);
	switch (c->holder) {
	case HOLDER_SAME_PROCESS:
		lock_expect(idx, c->name, md1, 1);
		lock_expect(idx, c->name, md1, 1);
		lock_expect(idx, c->name, md2, 0);
		break;
	case HOLDER_CHILD_EXITS:
	case HOLDER_CHILD_KILLED:
		pid = lock_child(idx, c->name, &ready_fd);
		lock_expect(idx, c->name, md1, 0);
		if (c->holder == HOLDER_CHILD_KILLED)
			kill(pid, SIGKILL);
		close(ready_fd);
		assert_int_equal(waitpid(pid, &status, 0), pid);
		lock_expect(idx, c->name, md1, 1);
		lock_expect(idx, c->name, md2, 0);
		break;
	case HOLDER_UNLOCKED:
		lock_expect(idx, c->name, md1, 1);
		shim_maildir_unlock(md1);
		shim_maildir_unlock(md1);
		lock_expect(idx, c->name, md2, 1);
		lock_expect(idx, c->name, md1, 0);
		break;
	case HOLDER_CLOSED:
		lock_expect(idx, c->name, md1, 1);
		shim_maildir_close(&md1);
		lock_expect(idx, c->name, md2, 1);
		break;
	}
	shim_maildir_close(&md1);
	shim_maildir_close(&md2);
	shim_maildir_close(&md2);
}

/* ---- expunge and move ---- */

enum change_op {
	CHANGE_EXPUNGE,
	CHANGE_EXPUNGE_TWICE,
	/* another client changed the flags (renamed the file) first */
	CHANGE_EXPUNGE_RENAMED,
	/* another client removed it first */
	CHANGE_EXPUNGE_GONE,
	CHANGE_MOVE,
	CHANGE_MOVE_RENAMED,
	/* a crash after link() left the copy in the folder */
	CHANGE_MOVE_AFTER_CRASH,
	/* the folder has a different file of that name */
	CHANGE_MOVE_CLASH,
};

struct change_case {
	const char *name;
	enum change_op op;
	const char *folder;
	/* NULL: refused */
	const char *folder_dir;
};

static const struct change_case change_cases[] = {
	{ "expunge", CHANGE_EXPUNGE, NULL, NULL },
	{ "expunge twice", CHANGE_EXPUNGE_TWICE, NULL, NULL },
	{ "expunge after a flag change", CHANGE_EXPUNGE_RENAMED, NULL, NULL },
	{ "expunge of a removed file", CHANGE_EXPUNGE_GONE, NULL, NULL },
	{ "move to Archive", CHANGE_MOVE, "Archive", ".Archive" },
	{ "move to Archive/2024", CHANGE_MOVE, "Archive/2024",
	  ".Archive.2024" },
	{ "move after a flag change", CHANGE_MOVE_RENAMED, "Old", ".Old" },
	{ "move completes after a crash", CHANGE_MOVE_AFTER_CRASH, "Archive",
	  ".Archive" },
	{ "move onto another file", CHANGE_MOVE_CLASH, "Archive", NULL },
	{ "move to an empty name", CHANGE_MOVE, "", NULL },
	{ "move to a leading dot", CHANGE_MOVE, ".Archive", NULL },
	{ "move to ..", CHANGE_MOVE, "..", NULL },
	{ "move to a/../b", CHANGE_MOVE, "a/../b", NULL },
	{ "move to a..b", CHANGE_MOVE, "a..b", NULL },
	{ "move to a/.b", CHANGE_MOVE, "a/.b", NULL },
	{ "move to /abs", CHANGE_MOVE, "/abs", NULL },
	{ "move to a/", CHANGE_MOVE, "a/", NULL },
	{ "move to a//b", CHANGE_MOVE, "a//b", NULL },
	{ "move to a tab", CHANGE_MOVE, "a\tb", NULL },
	{ "move to a newline", CHANGE_MOVE, "a\nb", NULL },
	{ "move to DEL", CHANGE_MOVE, "a\x7f", NULL },
};

#define CHANGE_FNAME "1700000000.M1P1.test:2,S"

static void test_change(void **state)
{
	const struct change_case *c = *state;
	size_t idx = (size_t)(c - change_cases);
	char error[512] = "", src[PATH_SIZE], dst[PATH_SIZE];
	char renamed[PATH_SIZE], marker[PATH_SIZE];
	struct shim_maildir *md;
	bool move = c->op >= CHANGE_MOVE;
	const char *base;
	int ret, expected = 0;

	make_test_dir(idx, c->name);
	md = shim_maildir_open(test_dir, error, sizeof(error));
	assert_non_null(md);
	snprintf(src, sizeof(src), "%s/cur/" CHANGE_FNAME, test_dir);
	snprintf(renamed, sizeof(renamed), "%s/cur/" CHANGE_FNAME "RT",
		 test_dir);
	write_file(idx, c->name, src, "m\n", 2, 0);
	assert_int_equal(shim_maildir_scan(md, NULL, NULL, error,
					   sizeof(error)), 0);
	base = shim_maildir_msg(md, 0)->base;
	snprintf(dst, sizeof(dst), "%s/%s/cur/%s", test_dir,
		 c->folder_dir != NULL ? c->folder_dir : ".Archive",
		 c->op == CHANGE_MOVE_RENAMED ? CHANGE_FNAME "RT" :
		 CHANGE_FNAME);
	if (c->op == CHANGE_EXPUNGE_RENAMED || c->op == CHANGE_MOVE_RENAMED)
		assert_int_equal(rename(src, renamed), 0);
	if (c->op == CHANGE_EXPUNGE_GONE)
		assert_int_equal(unlink(src), 0);
	if (c->op == CHANGE_MOVE_AFTER_CRASH || c->op == CHANGE_MOVE_CLASH) {
		snprintf(marker, sizeof(marker), "%s/.Archive", test_dir);
		assert_int_equal(mkdir(marker, 0700), 0);
		snprintf(marker, sizeof(marker), "%s/.Archive/cur", test_dir);
		assert_int_equal(mkdir(marker, 0700), 0);
		if (c->op == CHANGE_MOVE_AFTER_CRASH)
			assert_int_equal(link(src, dst), 0);
		else
			write_file(idx, c->name, dst, "other\n", 6, 0);
	}
	if (move) {
		ret = shim_maildir_move(md, 0, c->folder, error,
					sizeof(error));
		expected = c->folder_dir != NULL ? 0 : -1;
	} else {
		ret = shim_maildir_expunge(md, 0, error, sizeof(error));
		expected = c->op == CHANGE_EXPUNGE_GONE ? -1 : 0;
	}
	if (ret != expected)
		case_fail(idx, c->name, "returned %d, expected %d (%s)", ret,
			  expected, error);
	if (ret < 0 && error[0] == '\0')
		case_fail(idx, c->name, "no error text");
	if (c->op == CHANGE_EXPUNGE_GONE &&
	    strstr(error, "already removed") == NULL)
		case_fail(idx, c->name, "error \"%s\"", error);
	/* the base stays where it was, whatever the file is called now */
	if (shim_maildir_msg(md, 0)->base != base ||
	    strcmp(base, "1700000000.M1P1.test") != 0)
		case_fail(idx, c->name, "base moved or changed");
	if (c->op == CHANGE_EXPUNGE_TWICE &&
	    shim_maildir_expunge(md, 0, error, sizeof(error)) != -1)
		case_fail(idx, c->name, "second expunge succeeded");
	/* the source is gone exactly when the operation succeeded */
	if (c->op != CHANGE_EXPUNGE_GONE &&
	    (file_exists(src) || file_exists(renamed)) != (ret < 0))
		case_fail(idx, c->name, "source %s", ret < 0 ? "gone" :
			  "still there");
	if (move && ret == 0) {
		if (!file_exists(dst))
			case_fail(idx, c->name, "%s missing", dst);
		snprintf(marker, sizeof(marker), "%s/%s/maildirfolder",
			 test_dir, c->folder_dir);
		if (c->op != CHANGE_MOVE_AFTER_CRASH && !file_exists(marker))
			case_fail(idx, c->name, "%s missing", marker);
		snprintf(marker, sizeof(marker), "%s/%s/new", test_dir,
			 c->folder_dir);
		if (c->op != CHANGE_MOVE_AFTER_CRASH && !file_exists(marker))
			case_fail(idx, c->name, "%s missing", marker);
		if (shim_maildir_move(md, 0, c->folder, error,
				      sizeof(error)) != -1)
			case_fail(idx, c->name, "moved twice");
	}
	shim_maildir_close(&md);
}

/* ---- Message-ID ---- */

struct mid_case {
	const char *name;
	const char *text;
	size_t buf_size;
	int ret;
	const char *id;
};

static const struct mid_case mid_cases[] = {
	{ "plain", "From: a\nMessage-ID: <1@x>\n\nbody\n", 256, 1, "<1@x>" },
	{ "case and blanks", "message-id:   <2@x> \t\r\nX: y\r\n\r\n", 256, 1,
	  "<2@x>" },
	{ "folded", "Message-Id:\n <3@x>\nTo: b\n\n", 256, 1, "<3@x>" },
	{ "folded inside", "MESSAGE-ID: <4\n\t@x>\n\n", 256, 1, "<4\t@x>" },
	{ "blank before colon", "Message-ID : <5@x>\n\n", 256, 1, "<5@x>" },
	{ "first of two", "Message-ID: <6@x>\nMessage-ID: <7@x>\n\n", 256, 1,
	  "<6@x>" },
	{ "X-Message-ID is another field",
	  "X-Message-ID: <no>\nMessage-ID: <8@x>\n\n", 256, 1, "<8@x>" },
	{ "last header line without newline", "A: b\nMessage-ID: <9@x>", 256,
	  1, "<9@x>" },
	{ "truncated", "Message-ID: <10@example.org>\n\n", 6, 1, "<10@e" },
	{ "none", "From: a\nSubject: Message-ID: <no>\n\nbody\n", 256, 0, "" },
	{ "only in the body", "From: a\n\nMessage-ID: <no>\n", 256, 0, "" },
	{ "only in the body after CRLF", "A: 1\r\n\r\nMessage-ID: <no>\r\n",
	  256, 0, "" },
	{ "empty value", "Message-ID:  \nA: b\n\n", 256, 0, "" },
	{ "empty file", "", 256, 0, "" },
};

static void test_message_id(void **state)
{
	const struct mid_case *c = *state;
	size_t idx = (size_t)(c - mid_cases);
	char error[512], path[PATH_SIZE], buf[256 + 1];
	struct shim_maildir *md;
	int ret;

	make_test_dir(idx, c->name);
	md = shim_maildir_open(test_dir, error, sizeof(error));
	assert_non_null(md);
	snprintf(path, sizeof(path), "%s/cur/m:2,", test_dir);
	write_file(idx, c->name, path, c->text, strlen(c->text), 0);
	assert_int_equal(shim_maildir_scan(md, NULL, NULL, error,
					   sizeof(error)), 0);
	memset(buf, 'Z', sizeof(buf));
	ret = shim_maildir_message_id(md, 0, buf, c->buf_size, error,
				      sizeof(error));
	if (ret != c->ret)
		case_fail(idx, c->name, "returned %d, expected %d", ret,
			  c->ret);
	if (ret == 1 && strcmp(buf, c->id) != 0)
		case_fail(idx, c->name, "\"%s\", expected \"%s\"", buf, c->id);
	if (buf[c->buf_size] != 'Z')
		case_fail(idx, c->name, "wrote past the buffer");
	shim_maildir_close(&md);
}

/* ---- open errors ---- */

struct open_case {
	const char *name;
	/* under the test dir */
	const char *dir;
	bool ok;
};

static const struct open_case open_cases[] = {
	{ "creates new, cur and tmp", "", true },
	{ "parent missing", "/no/such", false },
	{ "a file, not a directory", "/file", false },
};

static void test_open(void **state)
{
	const struct open_case *c = *state;
	size_t idx = (size_t)(c - open_cases);
	char error[512] = "", path[PATH_SIZE], sub[PATH_SIZE + 8];
	struct shim_maildir *md;

	make_test_dir(idx, c->name);
	snprintf(path, sizeof(path), "%s/file", test_dir);
	write_file(idx, c->name, path, "", 0, 0);
	snprintf(path, sizeof(path), "%s%s", test_dir, c->dir);
	md = shim_maildir_open(path, error, sizeof(error));
	if ((md != NULL) != c->ok)
		case_fail(idx, c->name, "open %s (%s)",
			  md != NULL ? "succeeded" : "failed", error);
	if (md == NULL && strstr(error, path) == NULL)
		case_fail(idx, c->name, "error \"%s\" does not name the path",
			  error);
	snprintf(sub, sizeof(sub), "%s/tmp", path);
	if (md != NULL && !file_exists(sub))
		case_fail(idx, c->name, "%s missing", sub);
	shim_maildir_close(&md);
}

int main(void)
{
	int failed = 0;

	failed += RUN_TABLE_TEARDOWN("shim_maildir_open", test_open,
				     teardown_dir, open_cases);
	failed += RUN_TABLE_TEARDOWN("shim_msg_stream", test_stream,
				     teardown_dir, stream_cases);
	failed += RUN_TABLE_TEARDOWN("shim_maildir_scan", test_scan,
				     teardown_dir, scan_cases);
	failed += RUN_TABLE_TEARDOWN("shim_maildir_scan limit", test_limit,
				     teardown_dir, limit_cases);
	failed += RUN_TABLE_TEARDOWN("shim_maildir_lock", test_lock,
				     teardown_dir, lock_cases);
	failed += RUN_TABLE_TEARDOWN("shim_maildir_expunge/move", test_change,
				     teardown_dir, change_cases);
	failed += RUN_TABLE_TEARDOWN("shim_maildir_message_id",
				     test_message_id, teardown_dir, mid_cases);
	return failed == 0 ? 0 : 1;
}
