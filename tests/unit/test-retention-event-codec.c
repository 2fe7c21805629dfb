/* The events' text form: every row is encoded, the text decoded, and
   the decoded event compared field by field with the row's event (or
   with what the encoder must make of it: capped strings, unknown
   times). Rows with a known text pin the wire format. One cmocka test
   per table row. */

#include "pop3-retention-config.h"
#include "retention-event-codec.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "test-table.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* c repeated: string literals of RETENTION_EVENT_STRING_MAX octets and
   around it */
#define S10(c) c c c c c c c c c c
#define S100(c) S10(c) S10(c) S10(c) S10(c) S10(c) S10(c) S10(c) S10(c) \
	S10(c) S10(c)
#define S990(c) S100(c) S100(c) S100(c) S100(c) S100(c) S100(c) S100(c) \
	S100(c) S100(c) S10(c) S10(c) S10(c) S10(c) S10(c) S10(c) S10(c) \
	S10(c) S10(c)
#define S994(c) S990(c) c c c c
#define S996(c) S994(c) c c
#define S997(c) S996(c) c
#define S998(c) S997(c) c

_Static_assert(sizeof(S998("x")) - 1 == RETENTION_EVENT_STRING_MAX,
	       "S998 is not RETENTION_EVENT_STRING_MAX octets");

/* The event every row starts from: a download, as a pop3 process
   hands it over. */
#define BASE_EVENT \
	.type = RETENTION_EVENT_RETRIEVED, \
	.timestamp = 1795821228, \
	.user = "alice@example.org", \
	.mailbox = "INBOX", \
	.uidl = "00000001a1b2c3d4", \
	.uid = 1, \
	.uidvalidity = 1700000000, \
	.message_id = "<20261127.1234@example.org>", \
	.size = 2048, \
	.arrived_at = 1795800000, \
	.retrieved_at = 1795821228, \
	.first_retrieval = true, \
	.policy = RETENTION_POLICY_KEEP, \
	.session = "Kq2fP8wB", \
	.remote_ip = "192.0.2.10"

/* BASE_EVENT as text, without the seq field */
#define BASE_FIELDS \
	"message.retrieved\t1795821228\talice@example.org\tINBOX\t" \
	"00000001a1b2c3d4\t1\t1700000000\t<20261127.1234@example.org>\t" \
	"2048\t1795800000\t1795821228\t1\tkeep\t\t\tKq2fP8wB\t" \
	"192.0.2.10\t0"

struct codec_case {
	const char *name;
	struct retention_event event;
	/* what decoding the text must give; with expect_same, event */
	struct retention_event expected;
	bool expect_same;
	/* the exact text (NULL: not checked) */
	const char *fields;
	/* non-NULL: decoding the text must fail with this in its error */
	const char *error;
};

/* Rows override fields of BASE_EVENT. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Woverride-init"
static const struct codec_case codec_cases[] = {
	/* every type, every policy */
	{ "message.retrieved", { BASE_EVENT }, { 0 }, true,
	  BASE_FIELDS "\t", NULL },
	{ "message.deleted", { BASE_EVENT, .type = RETENTION_EVENT_DELETED,
	  .first_retrieval = false, .policy = RETENTION_POLICY_OFF,
	  .reason = "dele", .seq = 2 }, { 0 }, true, NULL, NULL },
	{ "message.retained", { BASE_EVENT,
	  .type = RETENTION_EVENT_RETAINED, .first_retrieval = false,
	  .reason = "min", .retain_until = 1796400000, .seq = 3 }, { 0 },
	  true, NULL, NULL },
	{ "message.expired", { BASE_EVENT, .type = RETENTION_EVENT_EXPIRED,
	  .first_retrieval = false,
	  .policy = RETENTION_POLICY_DELETE_AFTER_DOWNLOAD,
	  .reason = "downloaded", .dry_run = true, .seq = 4 }, { 0 }, true,
	  NULL, NULL },

	/* seq */
	{ "seq 0 is an empty field", { BASE_EVENT, .seq = 0 }, { 0 }, true,
	  BASE_FIELDS "\t", NULL },
	{ "seq 7", { BASE_EVENT, .seq = 7 }, { 0 }, true, BASE_FIELDS "\t7",
	  NULL },
	{ "largest seq", { BASE_EVENT, .seq = UINT32_MAX }, { 0 }, true,
	  BASE_FIELDS "\t4294967295", NULL },

	/* absent and empty fields */
	{ "every optional field absent", {
		.type = RETENTION_EVENT_DELETED, .timestamp = 1,
		.user = "u" }, { 0 }, true,
	  "message.deleted\t1\tu\t\t\t0\t0\t\t0\t\t\t0\toff\t\t\t\t\t0\t",
	  NULL },
	{ "empty strings are absent", { BASE_EVENT, .mailbox = "",
	  .uidl = "", .message_id = "", .reason = "", .session = "",
	  .remote_ip = "" }, { BASE_EVENT, .mailbox = NULL, .uidl = NULL,
	  .message_id = NULL, .reason = NULL, .session = NULL,
	  .remote_ip = NULL }, false, NULL, NULL },
	{ "negative times are unknown", { BASE_EVENT, .arrived_at = -1,
	  .retrieved_at = -86400, .retain_until = -5 },
	  { BASE_EVENT, .arrived_at = 0, .retrieved_at = 0,
	  .retain_until = 0 }, false, NULL, NULL },
	{ "no user: refused", { BASE_EVENT, .user = NULL }, { 0 }, false,
	  NULL, "user" },
	{ "no timestamp: refused", { BASE_EVENT, .timestamp = 0 }, { 0 },
	  false, NULL, "timestamp" },

	/* largest numbers */
	{ "largest numbers", { BASE_EVENT, .uid = UINT32_MAX,
	  .uidvalidity = UINT32_MAX, .size = UINT64_MAX,
	  .timestamp = INT64_MAX, .arrived_at = INT64_MAX,
	  .retrieved_at = INT64_MAX, .retain_until = INT64_MAX,
	  .seq = UINT32_MAX }, { 0 }, true, NULL, NULL },

	/* characters that must be escaped */
	{ "TAB, CR, LF and \\001 in every string", {
		BASE_EVENT,
		.user = "a\tb",
		.mailbox = "x\001y",
		.uidl = "u\rl",
		.message_id = "<m\n@\r\n>",
		.reason = "\001",
		.session = "\t\t",
		.remote_ip = "\n" }, { 0 }, true,
	  "message.retrieved\t1795821228\ta\001tb\tx\0011y\tu\001rl\t1\t"
	  "1700000000\t<m\001n@\001r\001n>\t2048\t1795800000\t1795821228\t"
	  "1\tkeep\t\0011\t\t\001t\001t\t\001n\t0\t", NULL },
	{ "escape-like text stays text", { BASE_EVENT,
	  .message_id = "\0011t\001\001n", .mailbox = "1t\\t" }, { 0 }, true,
	  NULL, NULL },
	{ "value ending in \\001", { BASE_EVENT, .session = "s\001" },
	  { 0 }, true, NULL, NULL },
	{ "UTF-8 and 8-bit bytes pass", { BASE_EVENT,
	  .mailbox = "Entw\xc3\xbcrfe", .message_id = "<\xff\xfe@x>" },
	  { 0 }, true, NULL, NULL },

	/* the 998-octet cap */
	{ "998 octets kept", { BASE_EVENT, .message_id = S998("m"),
	  .user = S998("u"), .mailbox = S998("b"), .uidl = S998("l"),
	  .reason = S998("r"), .session = S998("s"),
	  .remote_ip = S998("i") }, { 0 }, true, NULL, NULL },
	{ "999 octets cut to 998", { BASE_EVENT,
	  .message_id = S998("m") "X", .user = S998("u") "X",
	  .mailbox = S998("b") "X", .uidl = S998("l") "X",
	  .reason = S998("r") "X", .session = S998("s") "X",
	  .remote_ip = S998("i") "X" },
	  { BASE_EVENT, .message_id = S998("m"), .user = S998("u"),
	  .mailbox = S998("b"), .uidl = S998("l"), .reason = S998("r"),
	  .session = S998("s"), .remote_ip = S998("i") }, false, NULL,
	  NULL },
	{ "a hostile Message-ID cut to 998", { BASE_EVENT,
	  .message_id = S998("<") S998(">") S998("@") },
	  { BASE_EVENT, .message_id = S998("<") }, false, NULL, NULL },
	{ "998 escaped octets kept", { BASE_EVENT,
	  .message_id = S998("\t"), .session = S998("\001") }, { 0 }, true,
	  NULL, NULL },
	{ "999 escaped octets cut to 998", { BASE_EVENT,
	  .message_id = S998("\n") "\n" },
	  { BASE_EVENT, .message_id = S998("\n") }, false, NULL, NULL },
	{ "the cut does not split a 2-octet character", { BASE_EVENT,
	  .message_id = S997("m") "\xc3\xa9" },
	  { BASE_EVENT, .message_id = S997("m") }, false, NULL, NULL },
	{ "the cut does not split a 3-octet character", { BASE_EVENT,
	  .message_id = S996("m") "\xe2\x82\xac" },
	  { BASE_EVENT, .message_id = S996("m") }, false, NULL, NULL },
	{ "the cut does not split a 4-octet character", { BASE_EVENT,
	  .message_id = S996("m") "\xf0\x9f\x93\xa7" },
	  { BASE_EVENT, .message_id = S996("m") }, false, NULL, NULL },
	{ "a character ending at 998 is kept", { BASE_EVENT,
	  .message_id = S996("m") "\xc3\xa9" "X" },
	  { BASE_EVENT, .message_id = S996("m") "\xc3\xa9" }, false, NULL,
	  NULL },
	{ "not UTF-8: cut at 998", { BASE_EVENT,
	  .message_id = S994("m") "\x80\x80\x80\x80\x80" },
	  { BASE_EVENT, .message_id = S994("m") "\x80\x80\x80\x80" }, false,
	  NULL, NULL },

	/* the largest text there is */
	{ "every string 998 escaped octets, largest numbers", {
		.type = RETENTION_EVENT_RETRIEVED,
		.timestamp = INT64_MAX,
		.user = S998("\t"), .mailbox = S998("\r"),
		.uidl = S998("\n"), .uid = UINT32_MAX,
		.uidvalidity = UINT32_MAX, .message_id = S998("\001"),
		.size = UINT64_MAX, .arrived_at = INT64_MAX,
		.retrieved_at = INT64_MAX, .first_retrieval = true,
		.policy = RETENTION_POLICY_DELETE_AFTER_DOWNLOAD,
		.reason = S998("\t"), .retain_until = INT64_MAX,
		.session = S998("\n"), .remote_ip = S998("\r"),
		.dry_run = true, .seq = UINT32_MAX }, { 0 }, true, NULL,
	  NULL },
};
#pragma GCC diagnostic pop

/* Every failure names the table row. */
static void __attribute__((format(printf, 3, 4)))
case_fail(size_t idx, const char *name, const char *fmt, ...)
{
	char msg[512];
	va_list args;

	va_start(args, fmt);
	vsnprintf(msg, sizeof(msg), fmt, args);
	va_end(args);
	fail_msg("case %zu (%s): %s", idx, name, msg);
}

static void check_str(size_t idx, const char *name, const char *key,
		      const char *got, const char *want)
{
	if (got == NULL && want == NULL)
		return;
	if (got == NULL || want == NULL) {
		case_fail(idx, name, "%s %s, expected %s", key,
			  got == NULL ? "absent" : "present",
			  want == NULL ? "absent" : "present");
	}
	if (strcmp(got, want) != 0) {
		case_fail(idx, name, "%s differs (%zu octets, expected %zu): "
			  "\"%.40s\"", key, strlen(got), strlen(want), got);
	}
}

static void check_num(size_t idx, const char *name, const char *key,
		      int64_t got, int64_t want)
{
	if (got != want)
		case_fail(idx, name, "%s %lld, expected %lld", key,
			  (long long)got, (long long)want);
}

static void check_event(size_t idx, const char *name,
			const struct retention_event *got,
			const struct retention_event *want)
{
	check_num(idx, name, "type", got->type, want->type);
	check_num(idx, name, "timestamp", got->timestamp, want->timestamp);
	check_str(idx, name, "user", got->user, want->user);
	check_str(idx, name, "mailbox", got->mailbox, want->mailbox);
	check_str(idx, name, "uidl", got->uidl, want->uidl);
	check_num(idx, name, "uid", got->uid, want->uid);
	check_num(idx, name, "uidvalidity", got->uidvalidity,
		  want->uidvalidity);
	check_str(idx, name, "message_id", got->message_id,
		  want->message_id);
	if (got->size != want->size)
		case_fail(idx, name, "size %llu, expected %llu",
			  (unsigned long long)got->size,
			  (unsigned long long)want->size);
	check_num(idx, name, "arrived_at", got->arrived_at, want->arrived_at);
	check_num(idx, name, "retrieved_at", got->retrieved_at,
		  want->retrieved_at);
	check_num(idx, name, "first_retrieval", got->first_retrieval,
		  want->first_retrieval);
	check_num(idx, name, "policy", got->policy, want->policy);
	check_str(idx, name, "reason", got->reason, want->reason);
	check_num(idx, name, "retain_until", got->retain_until,
		  want->retain_until);
	check_str(idx, name, "session", got->session, want->session);
	check_str(idx, name, "remote_ip", got->remote_ip, want->remote_ip);
	check_num(idx, name, "dry_run", got->dry_run, want->dry_run);
	check_num(idx, name, "seq", got->seq, want->seq);
}

static void test_round_trip(void **state)
{
	const struct codec_case *c = *state;
	size_t idx = (size_t)(c - codec_cases);
	char buf[RETENTION_EVENT_ENCODED_MAX];
	struct retention_event decoded;
	const char *error = NULL;
	int len, ret;

	memset(buf, 'Z', sizeof(buf));
	len = retention_event_encode(&c->event, buf, sizeof(buf));
	if (len < 0)
		case_fail(idx, c->name, "encoding failed");
	if ((size_t)len != strlen(buf))
		case_fail(idx, c->name, "length %d, the text has %zu", len,
			  strlen(buf));
	if (strchr(buf, '\n') != NULL || strchr(buf, '\r') != NULL)
		case_fail(idx, c->name, "CR or LF in the text");
	if (c->fields != NULL && strcmp(buf, c->fields) != 0)
		case_fail(idx, c->name, "text \"%s\", expected \"%s\"", buf,
			  c->fields);

	ret = retention_event_decode(buf, &decoded, &error);
	if (c->error != NULL) {
		if (ret != -1)
			case_fail(idx, c->name, "decoded, expected \"%s\"",
				  c->error);
		if (error == NULL || strstr(error, c->error) == NULL)
			case_fail(idx, c->name, "error \"%s\", expected "
				  "\"%s\"", error == NULL ? "(null)" : error,
				  c->error);
		return;
	}
	if (ret != 0)
		case_fail(idx, c->name, "decoding failed: %s", error);
	check_event(idx, c->name, &decoded,
		    c->expect_same ? &c->event : &c->expected);
}

/* ---- buffer sizes ---- */

struct size_case {
	const char *name;
	/* of the buffer for BASE_EVENT with seq 7 */
	size_t size;
	int ret;
};

#define BASE_LEN ((int)sizeof(BASE_FIELDS "\t7") - 1)

static const struct size_case size_cases[] = {
	{ "no room", 0, -1 },
	{ "one octet: the NUL only", 1, -1 },
	{ "one octet short of the NUL", BASE_LEN, -1 },
	{ "exactly the text and its NUL", BASE_LEN + 1, BASE_LEN },
	{ "RETENTION_EVENT_ENCODED_MAX", RETENTION_EVENT_ENCODED_MAX,
	  BASE_LEN },
};

static void test_size(void **state)
{
	static const struct retention_event event = {
		BASE_EVENT,
		.seq = 7,
	};
	const struct size_case *c = *state;
	size_t idx = (size_t)(c - size_cases);
	char buf[RETENTION_EVENT_ENCODED_MAX + 1];
	int ret;

	memset(buf, 'Z', sizeof(buf));
	ret = retention_event_encode(&event, buf, c->size);
	if (ret != c->ret)
		case_fail(idx, c->name, "returned %d, expected %d", ret,
			  c->ret);
	if (c->size > 0 && ret < 0 && buf[0] != '\0')
		case_fail(idx, c->name, "buf not emptied on failure");
	if (buf[c->size] != 'Z')
		case_fail(idx, c->name, "wrote past size");
	if (ret >= 0 && strcmp(buf, BASE_FIELDS "\t7") != 0)
		case_fail(idx, c->name, "text \"%s\"", buf);
}

/* ---- fields from an untrusted producer ---- */

/* A line the encoder never writes: a string field over
   RETENTION_EVENT_STRING_MAX octets (after unescaping) is cut there, at
   a UTF-8 character boundary, as the encoder cuts it. */
struct decode_cap_case {
	const char *name;
	const char *fields;
	/* 0: user, 1: message_id, 2: reason */
	unsigned int field;
	size_t len;
};

#define CAP_FIELDS(user, message_id, reason) \
	"message.retrieved\t1795821228\t" user "\tINBOX\t\t1\t1\t" \
	message_id "\t0\t\t\t0\tkeep\t" reason "\t\t\t\t0"

static const struct decode_cap_case decode_cap_cases[] = {
	{ "message_id of 998 octets", CAP_FIELDS("u", S998("m"), ""), 1,
	  998 },
	{ "message_id of 999 octets", CAP_FIELDS("u", S998("m") "m", ""), 1,
	  998 },
	{ "user of 999 octets", CAP_FIELDS(S998("u") "u", "", ""), 0, 998 },
	{ "reason of 999 octets", CAP_FIELDS("u", "", S998("r") "r"), 2,
	  998 },
	{ "998 octets after unescaping", CAP_FIELDS("u", S997("m") "\001t",
						    ""), 1, 998 },
	{ "cut before a split character", CAP_FIELDS("u", S997("m")
						     "\xc3\xa9", ""), 1, 997 },
};

static void test_decode_cap(void **state)
{
	const struct decode_cap_case *c = *state;
	size_t idx = (size_t)(c - decode_cap_cases);
	struct retention_event decoded;
	const char *error = NULL, *got;
	char *fields = strdup(c->fields);

	if (fields == NULL)
		case_fail(idx, c->name, "out of memory");
	if (retention_event_decode(fields, &decoded, &error) < 0)
		case_fail(idx, c->name, "refused: %s", error);
	got = c->field == 0 ? decoded.user : c->field == 1 ?
		decoded.message_id : decoded.reason;
	if (got == NULL || strlen(got) != c->len)
		case_fail(idx, c->name, "%zu octets, expected %zu",
			  got == NULL ? 0 : strlen(got), c->len);
	free(fields);
}

int main(void)
{
	int failed = 0;

	failed += RUN_TABLE("retention_event_encode/decode round trip",
			    test_round_trip, codec_cases);
	failed += RUN_TABLE("retention_event_encode buffer size", test_size,
			    size_cases);
	failed += RUN_TABLE("retention_event_decode field caps",
			    test_decode_cap, decode_cap_cases);
	return failed == 0 ? 0 : 1;
}
