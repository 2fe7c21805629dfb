/* Event bodies and ids. The expected JSON and ids were produced by an
   independent Python model (json.dumps with compact separators,
   hashlib.sha256 over the same length-prefixed encoding), so a change in
   either is a change of the wire format and must be deliberate. One
   cmocka test per table row. */

#include "pop3-retention-config.h"
#include "retention-event.h"
#include "retention-event-codec.h"
#include "retention-settings.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "test-table.h"

#include <jansson.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>


/* 9999-12-31T23:59:59Z, the last second RFC 3339 can write */
#define TIME_RFC3339_MAX 253402300799

/* Every case struct starts with its name, which run_table() reads. */
struct event_case {
	const char *name;
	struct retention_event event;
	const char *json;
	const char *id;
	/* some input strings are not valid UTF-8: the round trip checks
	   their types only (string_cases check the values) */
	bool lossy;
};

static const struct event_case event_cases[] = {
	{ "message.retrieved", {
		.type = RETENTION_EVENT_RETRIEVED,
		.timestamp = 1795821228,
		.user = "alice@example.org",
		.mailbox = "INBOX",
		.uidl = "00000001a1b2c3d4",
		.uid = 1,
		.uidvalidity = 1700000000,
		.message_id = "<20261127.1234@example.org>",
		.size = 2048,
		.arrived_at = 1795800000,
		.retrieved_at = 1795821228,
		.first_retrieval = true,
		.policy = RETENTION_POLICY_KEEP,
		.reason = NULL,
		.retain_until = 0,
		.session = "Kq2fP8wB",
		.remote_ip = "192.0.2.10",
		.dry_run = false,
	  },
	  "{\"type\":\"message.retrieved\","
	  "\"timestamp\":\"2026-11-27T23:13:48Z\",\"data\":{"
	  "\"user\":\"alice@example.org\",\"mailbox\":\"INBOX\","
	  "\"uidl\":\"00000001a1b2c3d4\",\"uid\":1,"
	  "\"uidvalidity\":1700000000,"
	  "\"message_id\":\"<20261127.1234@example.org>\",\"size\":2048,"
	  "\"arrived_at\":\"2026-11-27T17:20:00Z\","
	  "\"retrieved_at\":\"2026-11-27T23:13:48Z\","
	  "\"first_retrieval\":true,\"policy\":\"keep\",\"reason\":null,"
	  "\"retain_until\":null,\"session\":\"Kq2fP8wB\","
	  "\"remote_ip\":\"192.0.2.10\",\"dry_run\":false}}",
	  "evt_05f362c91167cbd286e420da29447d5b", false },
	{ "message.deleted", {
		.type = RETENTION_EVENT_DELETED,
		.timestamp = 1795821300,
		.user = "alice@example.org",
		.mailbox = "INBOX",
		.uidl = "00000002b2c3d4e5",
		.uid = 2,
		.uidvalidity = 1700000000,
		.message_id = "<x2@example.org>",
		.size = 123456,
		.arrived_at = 1795700000,
		.retrieved_at = 1795821228,
		.first_retrieval = false,
		.policy = RETENTION_POLICY_DELETE_AFTER_DOWNLOAD,
		.reason = "dele",
		.retain_until = 0,
		.session = "Kq2fP8wB",
		.remote_ip = "2001:db8::25",
		.dry_run = false,
	  },
	  "{\"type\":\"message.deleted\","
	  "\"timestamp\":\"2026-11-27T23:15:00Z\",\"data\":{"
	  "\"user\":\"alice@example.org\",\"mailbox\":\"INBOX\","
	  "\"uidl\":\"00000002b2c3d4e5\",\"uid\":2,"
	  "\"uidvalidity\":1700000000,"
	  "\"message_id\":\"<x2@example.org>\",\"size\":123456,"
	  "\"arrived_at\":\"2026-11-26T13:33:20Z\","
	  "\"retrieved_at\":\"2026-11-27T23:13:48Z\","
	  "\"first_retrieval\":false,"
	  "\"policy\":\"delete-after-download\",\"reason\":\"dele\","
	  "\"retain_until\":null,\"session\":\"Kq2fP8wB\","
	  "\"remote_ip\":\"2001:db8::25\",\"dry_run\":false}}",
	  "evt_90539e2c9f0acf1341f98b474a335749", false },
	{ "message.retained", {
		.type = RETENTION_EVENT_RETAINED,
		.timestamp = 1795821300,
		.user = "alice@example.org",
		.mailbox = "INBOX",
		.uidl = "00000003c3d4e5f6",
		.uid = 3,
		.uidvalidity = 1700000000,
		.message_id = "<x3@example.org>",
		.size = 77,
		.arrived_at = 1795800000,
		.retrieved_at = 1795821228,
		.first_retrieval = false,
		.policy = RETENTION_POLICY_KEEP,
		.reason = "min",
		.retain_until = 1796426100,
		.session = "Kq2fP8wB",
		.remote_ip = "192.0.2.10",
		.dry_run = false,
	  },
	  "{\"type\":\"message.retained\","
	  "\"timestamp\":\"2026-11-27T23:15:00Z\",\"data\":{"
	  "\"user\":\"alice@example.org\",\"mailbox\":\"INBOX\","
	  "\"uidl\":\"00000003c3d4e5f6\",\"uid\":3,"
	  "\"uidvalidity\":1700000000,"
	  "\"message_id\":\"<x3@example.org>\",\"size\":77,"
	  "\"arrived_at\":\"2026-11-27T17:20:00Z\","
	  "\"retrieved_at\":\"2026-11-27T23:13:48Z\","
	  "\"first_retrieval\":false,\"policy\":\"keep\","
	  "\"reason\":\"min\",\"retain_until\":\"2026-12-04T23:15:00Z\","
	  "\"session\":\"Kq2fP8wB\",\"remote_ip\":\"192.0.2.10\","
	  "\"dry_run\":false}}",
	  "evt_49345c57f4f4beb2f425771aff070ed2", false },
	/* a sweep: never retrieved, no session, no client, dry run */
	{ "message.expired", {
		.type = RETENTION_EVENT_EXPIRED,
		.timestamp = 1798413300,
		.user = "bob",
		.mailbox = "INBOX",
		.uidl = "u4",
		.uid = 4,
		.uidvalidity = 1700000000,
		.message_id = NULL,
		.size = 512,
		.arrived_at = 1795000000,
		.retrieved_at = 0,
		.first_retrieval = false,
		.policy = RETENTION_POLICY_KEEP,
		.reason = "max-exceeded",
		.retain_until = 0,
		.session = NULL,
		.remote_ip = NULL,
		.dry_run = true,
	  },
	  "{\"type\":\"message.expired\","
	  "\"timestamp\":\"2026-12-27T23:15:00Z\",\"data\":{"
	  "\"user\":\"bob\",\"mailbox\":\"INBOX\",\"uidl\":\"u4\","
	  "\"uid\":4,\"uidvalidity\":1700000000,\"message_id\":null,"
	  "\"size\":512,\"arrived_at\":\"2026-11-18T11:06:40Z\","
	  "\"retrieved_at\":null,\"first_retrieval\":false,"
	  "\"policy\":\"keep\",\"reason\":\"max-exceeded\","
	  "\"retain_until\":null,\"session\":null,\"remote_ip\":null,"
	  "\"dry_run\":true}}",
	  "evt_9d07a4f5a1cf78718bb63933ea4a1ce9", false },
	{ "every field absent", {
		.type = RETENTION_EVENT_RETRIEVED,
	  },
	  "{\"type\":\"message.retrieved\",\"timestamp\":null,\"data\":{"
	  "\"user\":null,\"mailbox\":null,\"uidl\":null,\"uid\":0,"
	  "\"uidvalidity\":0,\"message_id\":null,\"size\":0,"
	  "\"arrived_at\":null,\"retrieved_at\":null,"
	  "\"first_retrieval\":false,\"policy\":\"off\",\"reason\":null,"
	  "\"retain_until\":null,\"session\":null,\"remote_ip\":null,"
	  "\"dry_run\":false}}",
	  "evt_7115d1fef6728cdcff106e890799ea75", false },
	/* JSON escapes, UTF-8 kept, an invalid byte replaced, a size
	   above 32 bits */
	{ "escaping and UTF-8", {
		.type = RETENTION_EVENT_RETRIEVED,
		.timestamp = 1795821228,
		.user = "a\"b\\c/d",
		.mailbox = "Entw\xc3\xbcrfe",
		.uidl = "00000001a1b2c3d4",
		.uid = 7,
		.uidvalidity = 1700000000,
		.message_id = "<a\x01\tb\xff@x>",
		.size = 12884901888ULL,
		.arrived_at = 1795800000,
		.retrieved_at = 1795821228,
		.first_retrieval = true,
		.policy = RETENTION_POLICY_KEEP,
		.session = "Kq2fP8wB",
		.remote_ip = "192.0.2.10",
	  },
	  "{\"type\":\"message.retrieved\","
	  "\"timestamp\":\"2026-11-27T23:13:48Z\",\"data\":{"
	  "\"user\":\"a\\\"b\\\\c/d\",\"mailbox\":\"Entw\xc3\xbcrfe\","
	  "\"uidl\":\"00000001a1b2c3d4\",\"uid\":7,"
	  "\"uidvalidity\":1700000000,"
	  "\"message_id\":\"<a\\u0001\\tb\xef\xbf\xbd@x>\","
	  "\"size\":12884901888,\"arrived_at\":\"2026-11-27T17:20:00Z\","
	  "\"retrieved_at\":\"2026-11-27T23:13:48Z\","
	  "\"first_retrieval\":true,\"policy\":\"keep\",\"reason\":null,"
	  "\"retain_until\":null,\"session\":\"Kq2fP8wB\","
	  "\"remote_ip\":\"192.0.2.10\",\"dry_run\":false}}",
	  "evt_4c776f962c3cf2bece698d0ad52bf875", true },
	/* year 10000 has no RFC 3339 form: null, not a malformed string */
	{ "time beyond RFC 3339", {
		.type = RETENTION_EVENT_RETAINED,
		.timestamp = 1795821228,
		.user = "alice@example.org",
		.mailbox = "INBOX",
		.uidl = "00000001a1b2c3d4",
		.uid = 1,
		.uidvalidity = 1700000000,
		.message_id = "<20261127.1234@example.org>",
		.size = 2048,
		.arrived_at = 1795800000,
		.retrieved_at = 1795821228,
		.policy = RETENTION_POLICY_KEEP,
		.reason = "hold",
		.retain_until = TIME_RFC3339_MAX + 1,
		.session = "Kq2fP8wB",
		.remote_ip = "192.0.2.10",
	  },
	  "{\"type\":\"message.retained\","
	  "\"timestamp\":\"2026-11-27T23:13:48Z\",\"data\":{"
	  "\"user\":\"alice@example.org\",\"mailbox\":\"INBOX\","
	  "\"uidl\":\"00000001a1b2c3d4\",\"uid\":1,"
	  "\"uidvalidity\":1700000000,"
	  "\"message_id\":\"<20261127.1234@example.org>\",\"size\":2048,"
	  "\"arrived_at\":\"2026-11-27T17:20:00Z\","
	  "\"retrieved_at\":\"2026-11-27T23:13:48Z\","
	  "\"first_retrieval\":false,\"policy\":\"keep\","
	  "\"reason\":\"hold\",\"retain_until\":null,"
	  "\"session\":\"Kq2fP8wB\",\"remote_ip\":\"192.0.2.10\","
	  "\"dry_run\":false}}",
	  "evt_6a1390ea045fd6a6af9d3124a0d8839d", false },
};

/* The data keys, in wire order. */
static const char *const data_keys[] = {
	"user", "mailbox", "uidl", "uid", "uidvalidity", "message_id",
	"size", "arrived_at", "retrieved_at", "first_retrieval", "policy",
	"reason", "retain_until", "session", "remote_ip", "dry_run",
};

/* A string field is built as `pad` bytes of 'a' followed by tail, and
   must come back as `pad_out` bytes of 'a' followed by tail_out. */
struct string_case {
	const char *name;
	size_t pad;
	const char *tail;
	size_t pad_out;
	const char *tail_out;
};

#define U_FFFD "\xef\xbf\xbd"

static const struct string_case string_cases[] = {
	{ "ascii", 0, "INBOX", 0, "INBOX" },
	{ "empty", 0, "", 0, "" },
	{ "quote, backslash, slash", 0, "\"\\/", 0, "\"\\/" },
	{ "control characters", 0, "\x01\t\n\x1f", 0, "\x01\t\n\x1f" },
	{ "2-byte UTF-8", 0, "Entw\xc3\xbcrfe", 0, "Entw\xc3\xbcrfe" },
	{ "3-byte UTF-8", 0, "\xe2\x82\xac", 0, "\xe2\x82\xac" },
	{ "4-byte UTF-8", 0, "\xf0\x9f\x93\xa7", 0, "\xf0\x9f\x93\xa7" },
	{ "invalid byte", 0, "a\xff" "b", 0, "a" U_FFFD "b" },
	{ "Latin-1 text", 0, "Entw\xfc" "rfe", 0, "Entw" U_FFFD "rfe" },
	{ "lone continuation byte", 0, "\x80", 0, U_FFFD },
	{ "overlong slash", 0, "\xc0\xaf", 0, U_FFFD U_FFFD },
	{ "overlong 3-byte", 0, "\xe0\x80\xaf", 0, U_FFFD U_FFFD U_FFFD },
	{ "overlong 4-byte", 0, "\xf0\x80\x80\xaf", 0,
	  U_FFFD U_FFFD U_FFFD U_FFFD },
	{ "UTF-16 surrogate", 0, "\xed\xa0\x80", 0, U_FFFD U_FFFD U_FFFD },
	{ "above U+10FFFF", 0, "\xf4\x90\x80\x80", 0,
	  U_FFFD U_FFFD U_FFFD U_FFFD },
	{ "truncated sequence", 0, "a\xe2\x82", 0, "a" U_FFFD U_FFFD },
	{ "998 bytes, the cap", 998, "", 998, "" },
	{ "999 bytes, cut", 999, "", 998, "" },
	{ "far too long, cut", 100000, "", 998, "" },
	{ "character across the cap", 997, "\xc3\xbc", 997, "" },
	{ "character ending at the cap", 996, "\xc3\xbc", 996, "\xc3\xbc" },
	{ "replacement across the cap", 996, "\xff", 996, "" },
	{ "replacement ending at the cap", 995, "\xff", 995, U_FFFD },
};

struct time_case {
	const char *name;
	time_t t;
	size_t size;
	/* "": formatting must fail (and leave an empty string) */
	const char *expected;
};

static const struct time_case time_cases[] = {
	{ "epoch", 0, 21, "1970-01-01T00:00:00Z" },
	{ "one second", 1, 21, "1970-01-01T00:00:01Z" },
	{ "spec vector time", 1614265330, 21, "2021-02-25T15:02:10Z" },
	{ "header example", 1795821228, 21, "2026-11-27T23:13:48Z" },
	{ "leap day", 1709164800, 21, "2024-02-29T00:00:00Z" },
	{ "after 2038", 2147483648LL, 21, "2038-01-19T03:14:08Z" },
	{ "before the epoch", -1, 21, "1969-12-31T23:59:59Z" },
	{ "last four-digit year", TIME_RFC3339_MAX, 21,
	  "9999-12-31T23:59:59Z" },
	{ "year 10000", TIME_RFC3339_MAX + 1, 64, "" },
	{ "buffer one byte short", 1795821228, 20, "" },
	{ "larger buffer", 1795821228, 64, "2026-11-27T23:13:48Z" },
};

/* Ids of two variants of event_cases[0] must be equal or differ. */
struct id_case {
	const char *name;
	void (*mutate_a)(struct retention_event *event);
	void (*mutate_b)(struct retention_event *event);
	bool same;
};

static void mutate_uid(struct retention_event *event)
{
	event->uid++;
}

static void mutate_uidvalidity(struct retention_event *event)
{
	event->uidvalidity++;
}

static void mutate_type_deleted(struct retention_event *event)
{
	event->type = RETENTION_EVENT_DELETED;
}

static void mutate_type_retained(struct retention_event *event)
{
	event->type = RETENTION_EVENT_RETAINED;
}

static void mutate_type_expired(struct retention_event *event)
{
	event->type = RETENTION_EVENT_EXPIRED;
}

static void mutate_session(struct retention_event *event)
{
	event->session = "Kq2fP8wC";
}

static void mutate_session_null(struct retention_event *event)
{
	event->session = NULL;
}

static void mutate_session_empty(struct retention_event *event)
{
	event->session = "";
}

static void mutate_timestamp(struct retention_event *event)
{
	event->timestamp++;
}

static void mutate_user(struct retention_event *event)
{
	event->user = "bob@example.org";
}

static void mutate_mailbox(struct retention_event *event)
{
	event->mailbox = "Archive";
}

/* the same bytes, split differently between user and mailbox */
static void mutate_user_mailbox_boundary(struct retention_event *event)
{
	event->user = "alice@example.orgI";
	event->mailbox = "NBOX";
}

/* uid and uidvalidity swapped */
static void mutate_uid_swap(struct retention_event *event)
{
	uint32_t uid = event->uid;

	event->uid = event->uidvalidity;
	event->uidvalidity = uid;
}

/* Everything outside the identity: a host that rebuilds the event for a
   retry may fill these differently and must still get the same id. */
static void mutate_non_identity(struct retention_event *event)
{
	event->uidl = "other-uidl";
	event->message_id = "<other@example.org>";
	event->size = 1;
	event->arrived_at = 1;
	event->retrieved_at = 2;
	event->first_retrieval = !event->first_retrieval;
	event->policy = RETENTION_POLICY_OFF;
	event->reason = "dele";
	event->retain_until = 3;
	event->remote_ip = "198.51.100.7";
	event->dry_run = !event->dry_run;
}

static void mutate_seq_1(struct retention_event *event)
{
	event->seq = 1;
}

static void mutate_seq_2(struct retention_event *event)
{
	event->seq = 2;
}

static void mutate_non_identity_seq_2(struct retention_event *event)
{
	mutate_non_identity(event);
	event->seq = 2;
}

static const struct id_case id_cases[] = {
	{ "same event", NULL, NULL, true },
	{ "fields outside the identity", NULL, mutate_non_identity, true },
	{ "uid", NULL, mutate_uid, false },
	{ "uidvalidity", NULL, mutate_uidvalidity, false },
	{ "uid and uidvalidity swapped", NULL, mutate_uid_swap, false },
	{ "type deleted", NULL, mutate_type_deleted, false },
	{ "type retained", NULL, mutate_type_retained, false },
	{ "type expired", NULL, mutate_type_expired, false },
	{ "retained vs expired", mutate_type_retained, mutate_type_expired,
	  false },
	{ "session", NULL, mutate_session, false },
	{ "session absent", NULL, mutate_session_null, false },
	{ "session absent vs empty", mutate_session_null,
	  mutate_session_empty, false },
	{ "timestamp", NULL, mutate_timestamp, false },
	{ "user", NULL, mutate_user, false },
	{ "mailbox", NULL, mutate_mailbox, false },
	{ "user/mailbox boundary", NULL, mutate_user_mailbox_boundary,
	  false },
	{ "seq vs none", NULL, mutate_seq_1, false },
	{ "seq 1 vs 2", mutate_seq_1, mutate_seq_2, false },
	{ "same seq", mutate_seq_2, mutate_seq_2, true },
	{ "seq, fields outside the identity", mutate_seq_2,
	  mutate_non_identity_seq_2, true },
};

/* Every failure names the table row. */
static void __attribute__((format(printf, 3, 4)))
case_fail(size_t idx, const char *name, const char *fmt, ...)
{
	char msg[4096];
	va_list args;

	va_start(args, fmt);
	vsnprintf(msg, sizeof(msg), fmt, args);
	va_end(args);
	fail_msg("case %zu (%s): %s", idx, name, msg);
}

static void check_id_format(size_t idx, const char *name, const char *id)
{
	size_t i;

	if (strlen(id) != RETENTION_EVENT_ID_SIZE - 1 ||
	    strncmp(id, "evt_", 4) != 0)
		case_fail(idx, name, "malformed id \"%s\"", id);
	for (i = 4; id[i] != '\0'; i++) {
		if (!((id[i] >= '0' && id[i] <= '9') ||
		      (id[i] >= 'a' && id[i] <= 'f')))
			case_fail(idx, name, "id \"%s\" is not lower-case hex",
				  id);
	}
}

static void test_event_json(void **state)
{
	const struct event_case *c = *state;
	size_t idx = (size_t)(c - event_cases);
	char *json;

	json = retention_event_to_json(&c->event);
	if (json == NULL)
		case_fail(idx, c->name, "retention_event_to_json() failed");
	if (strcmp(json, c->json) != 0) {
		case_fail(idx, c->name, "JSON\n  got      %s\n  expected %s",
			  json, c->json);
	}
	free(json);
}

static void test_event_id(void **state)
{
	const struct event_case *c = *state;
	size_t idx = (size_t)(c - event_cases);
	char id[RETENTION_EVENT_ID_SIZE], again[RETENTION_EVENT_ID_SIZE];

	memset(id, 'x', sizeof(id));
	retention_event_id(&c->event, id);
	check_id_format(idx, c->name, id);
	if (strcmp(id, c->id) != 0)
		case_fail(idx, c->name, "id %s, expected %s", id, c->id);
	retention_event_id(&c->event, again);
	if (strcmp(id, again) != 0)
		case_fail(idx, c->name, "id not deterministic: %s then %s",
			  id, again);
}

static void check_string(size_t idx, const char *name, json_t *data,
			 const char *key, const char *value, bool lossy)
{
	json_t *v = json_object_get(data, key);

	if (value == NULL) {
		if (!json_is_null(v))
			case_fail(idx, name, "%s should be null", key);
		return;
	}
	if (!json_is_string(v))
		case_fail(idx, name, "%s should be a string", key);
	if (!lossy && strcmp(json_string_value(v), value) != 0)
		case_fail(idx, name, "%s is \"%s\", expected \"%s\"", key,
			  json_string_value(v), value);
}

static void check_integer(size_t idx, const char *name, json_t *data,
			  const char *key, uint64_t value)
{
	json_t *v = json_object_get(data, key);

	if (!json_is_integer(v))
		case_fail(idx, name, "%s should be an integer", key);
	if (json_integer_value(v) < 0 ||
	    (uint64_t)json_integer_value(v) != value)
		case_fail(idx, name, "%s is %" JSON_INTEGER_FORMAT
			  ", expected %llu", key, json_integer_value(v),
			  (unsigned long long)value);
}

static void check_bool(size_t idx, const char *name, json_t *data,
		       const char *key, bool value)
{
	json_t *v = json_object_get(data, key);

	if (!json_is_boolean(v))
		case_fail(idx, name, "%s should be a boolean", key);
	if (json_is_true(v) != value)
		case_fail(idx, name, "%s is %s", key,
			  json_is_true(v) ? "true" : "false");
}

/* A time must come back as the same second, through the project's own
   RFC 3339 parser; 0 and times without an RFC 3339 form are null. */
static void check_time(size_t idx, const char *name, json_t *obj,
		       const char *key, time_t value)
{
	json_t *v = json_object_get(obj, key);
	time_t parsed = 0;

	if (value == 0 || value > TIME_RFC3339_MAX) {
		if (!json_is_null(v))
			case_fail(idx, name, "%s should be null", key);
		return;
	}
	if (!json_is_string(v))
		case_fail(idx, name, "%s should be a string", key);
	if (strlen(json_string_value(v)) != 20 ||
	    json_string_value(v)[19] != 'Z' ||
	    retention_date_parse(json_string_value(v), &parsed) < 0)
		case_fail(idx, name, "%s \"%s\" is not RFC 3339 UTC", key,
			  json_string_value(v));
	if (parsed != value)
		case_fail(idx, name, "%s \"%s\" is %lld, expected %lld", key,
			  json_string_value(v), (long long)parsed,
			  (long long)value);
}

static void test_event_roundtrip(void **state)
{
	const struct event_case *c = *state;
	const struct retention_event *e = &c->event;
	size_t idx = (size_t)(c - event_cases);
	json_error_t error;
	json_t *root, *data, *type;
	const char *key;
	void *iter;
	size_t i;
	char *json;

	json = retention_event_to_json(e);
	if (json == NULL)
		case_fail(idx, c->name, "retention_event_to_json() failed");
	root = json_loads(json, JSON_REJECT_DUPLICATES, &error);
	if (root == NULL)
		case_fail(idx, c->name, "jansson cannot parse %s: %s", json,
			  error.text);
	free(json);
	if (!json_is_object(root) || json_object_size(root) != 3)
		case_fail(idx, c->name,
			  "top level is not {type,timestamp,data}");
	type = json_object_get(root, "type");
	if (!json_is_string(type) ||
	    strcmp(json_string_value(type),
		   retention_event_type_name(e->type)) != 0)
		case_fail(idx, c->name, "type is not \"%s\"",
			  retention_event_type_name(e->type));
	check_time(idx, c->name, root, "timestamp", e->timestamp);
	data = json_object_get(root, "data");
	if (!json_is_object(data) ||
	    json_object_size(data) != N_ELEMENTS(data_keys))
		case_fail(idx, c->name, "data is not an object of %zu keys",
			  N_ELEMENTS(data_keys));
	/* the parser keeps document order: this checks the wire order */
	iter = json_object_iter(data);
	for (i = 0; i < N_ELEMENTS(data_keys); i++) {
		key = json_object_iter_key(iter);
		if (strcmp(key, data_keys[i]) != 0)
			case_fail(idx, c->name, "data key %zu is %s, "
				  "expected %s", i, key, data_keys[i]);
		iter = json_object_iter_next(data, iter);
	}

	check_string(idx, c->name, data, "user", e->user, c->lossy);
	check_string(idx, c->name, data, "mailbox", e->mailbox, c->lossy);
	check_string(idx, c->name, data, "uidl", e->uidl, c->lossy);
	check_integer(idx, c->name, data, "uid", e->uid);
	check_integer(idx, c->name, data, "uidvalidity", e->uidvalidity);
	check_string(idx, c->name, data, "message_id", e->message_id,
		     c->lossy);
	check_integer(idx, c->name, data, "size", e->size);
	check_time(idx, c->name, data, "arrived_at", e->arrived_at);
	check_time(idx, c->name, data, "retrieved_at", e->retrieved_at);
	check_bool(idx, c->name, data, "first_retrieval", e->first_retrieval);
	check_string(idx, c->name, data, "policy",
		     retention_policy_kind_name(e->policy), false);
	check_string(idx, c->name, data, "reason", e->reason, c->lossy);
	check_time(idx, c->name, data, "retain_until", e->retain_until);
	check_string(idx, c->name, data, "session", e->session, c->lossy);
	check_string(idx, c->name, data, "remote_ip", e->remote_ip, c->lossy);
	check_bool(idx, c->name, data, "dry_run", e->dry_run);
	json_decref(root);
}

static char *padded_string(size_t pad, const char *tail)
{
	size_t tail_len = strlen(tail);
	char *str;

	str = malloc(pad + tail_len + 1);
	assert_non_null(str);
	memset(str, 'a', pad);
	memcpy(str + pad, tail, tail_len + 1);
	return str;
}

static void test_string(void **state)
{
	const struct string_case *c = *state;
	size_t idx = (size_t)(c - string_cases);
	struct retention_event event = event_cases[0].event;
	char *input, *expected, *json;
	const char *fields[] = { "user", "message_id" };
	json_error_t error;
	json_t *root, *v;
	size_t i;

	input = padded_string(c->pad, c->tail);
	expected = padded_string(c->pad_out, c->tail_out);
	event.user = input;
	event.message_id = input;
	json = retention_event_to_json(&event);
	if (json == NULL)
		case_fail(idx, c->name, "retention_event_to_json() failed");
	root = json_loads(json, 0, &error);
	if (root == NULL)
		case_fail(idx, c->name, "jansson cannot parse the body: %s",
			  error.text);
	for (i = 0; i < N_ELEMENTS(fields); i++) {
		v = json_object_get(json_object_get(root, "data"), fields[i]);
		if (!json_is_string(v))
			case_fail(idx, c->name, "%s is not a string",
				  fields[i]);
		if (strcmp(json_string_value(v), expected) != 0)
			case_fail(idx, c->name,
				  "%s is \"%.60s\" (%zu bytes), expected "
				  "\"%.60s\" (%zu bytes)", fields[i],
				  json_string_value(v),
				  strlen(json_string_value(v)), expected,
				  strlen(expected));
	}
	json_decref(root);
	free(json);
	free(input);
	free(expected);
}

static void test_time(void **state)
{
	const struct time_case *c = *state;
	size_t idx = (size_t)(c - time_cases);
	char buf[64];
	const char *ret;

	assert_true(c->size <= sizeof(buf));
	memset(buf, 'x', sizeof(buf));
	ret = retention_time_format(c->t, buf, c->size);
	if (ret != buf)
		case_fail(idx, c->name, "did not return buf");
	if (strcmp(buf, c->expected) != 0)
		case_fail(idx, c->name, "\"%s\", expected \"%s\"", buf,
			  c->expected);
}

static void test_id_pair(void **state)
{
	const struct id_case *c = *state;
	size_t idx = (size_t)(c - id_cases);
	struct retention_event a = event_cases[0].event;
	struct retention_event b = event_cases[0].event;
	char id_a[RETENTION_EVENT_ID_SIZE], id_b[RETENTION_EVENT_ID_SIZE];

	if (c->mutate_a != NULL)
		c->mutate_a(&a);
	if (c->mutate_b != NULL)
		c->mutate_b(&b);
	retention_event_id(&a, id_a);
	retention_event_id(&b, id_b);
	check_id_format(idx, c->name, id_a);
	check_id_format(idx, c->name, id_b);
	if (c->same && strcmp(id_a, id_b) != 0)
		case_fail(idx, c->name, "ids differ: %s, %s", id_a, id_b);
	if (!c->same && strcmp(id_a, id_b) == 0)
		case_fail(idx, c->name, "ids are both %s", id_a);
}

/* ---- the fields as text (retention_event_decode) ---- */

/* event_cases[0] as the Dovecot host writes it */
#define FIELDS_RETRIEVED \
	"message.retrieved\t1795821228\talice@example.org\tINBOX\t" \
	"00000001a1b2c3d4\t1\t1700000000\t<20261127.1234@example.org>\t" \
	"2048\t1795800000\t1795821228\t1\tkeep\t\t\tKq2fP8wB\t" \
	"192.0.2.10\t0"

struct decode_case {
	const char *name;
	const char *fields;
	/* NULL: must decode; else a substring of the error */
	const char *error;
	/* checked when it decodes (NULL: not checked) */
	const char *user, *mailbox, *message_id;
	uint32_t uid;
	bool check_json;	/* JSON and id equal event_cases[0]'s */
	/* checked when it decodes */
	uint32_t seq;
	/* the id expected instead of event_cases[0]'s (check_json) */
	const char *id;
};

static const struct decode_case decode_cases[] = {
	{ "event_cases[0]", FIELDS_RETRIEVED, NULL, "alice@example.org",
	  "INBOX", "<20261127.1234@example.org>", 1, true, 0, NULL },
	{ "escapes", "message.deleted\t1795821228\ta\001tb\001nc\tx\0011y"
	  "\001rz\t\t7\t1\t<m\001zid>\t0\t\t\t0\tkeep\tpolicy\t\t\t\t1",
	  NULL, "a\tb\nc", "x\001y\rz", "<mzid>", 7, false, 0, NULL },
	{ "escaped NUL ends the field", "message.deleted\t1795821228\t"
	  "ab\0010cd\tINBOX\t\t7\t1\t\t0\t\t\t0\tkeep\t\t\t\t\t0",
	  NULL, "ab", "INBOX", NULL, 7, false, 0, NULL },
	{ "trailing lone escape byte dropped", "message.deleted\t1795821228\t"
	  "ab\001\tINBOX\t\t7\t1\t\t0\t\t\t0\tkeep\t\t\t\t\t0",
	  NULL, "ab", "INBOX", NULL, 7, false, 0, NULL },
	{ "largest uid", "message.expired\t1795821228\tu\tINBOX\t\t"
	  "4294967295\t4294967295\t\t18446744073709551615\t\t\t0\tkeep\t"
	  "keep_expired\t1795821229\t\t\t0", NULL, "u", "INBOX", NULL,
	  4294967295u, false, 0, NULL },
	{ "17 fields", "message.retrieved\t1795821228\tu\tINBOX\t\t1\t1\t\t"
	  "0\t\t\t0\tkeep\t\t\t\t", "17 event fields, expected 19", NULL,
	  NULL, NULL, 0, false, 0, NULL },
	/* the same event with its number: the same JSON, its own id
	   (evt_953696eb… from the Python model, with seq appended to the
	   identity) */
	{ "seq", FIELDS_RETRIEVED "\t7", NULL, "alice@example.org", "INBOX",
	  "<20261127.1234@example.org>", 1, true, 7,
	  "evt_953696eb3d344472ae0ae3c354dfcf9a" },
	{ "empty seq is none", FIELDS_RETRIEVED "\t", NULL,
	  "alice@example.org", "INBOX", "<20261127.1234@example.org>", 1,
	  true, 0, NULL },
	{ "largest seq", FIELDS_RETRIEVED "\t4294967295", NULL, NULL, NULL,
	  NULL, 1, false, 4294967295u, NULL },
	{ "seq not a number", FIELDS_RETRIEVED "\tx", "invalid seq", NULL,
	  NULL, NULL, 0, false, 0, NULL },
	{ "seq above 32 bits", FIELDS_RETRIEVED "\t4294967296",
	  "invalid seq", NULL, NULL, NULL, 0, false, 0, NULL },
	{ "seq with a sign", FIELDS_RETRIEVED "\t+7", "invalid seq", NULL,
	  NULL, NULL, 0, false, 0, NULL },
	{ "20 fields", FIELDS_RETRIEVED "\t7\tx",
	  "20 event fields, expected 19", NULL, NULL, NULL, 0, false, 0, NULL },
	{ "empty line", "", "0 event fields, expected 19", NULL, NULL, NULL,
	  0, false, 0, NULL },
	{ "unknown type", "message.read\t1795821228\tu\tINBOX\t\t1\t1\t\t0"
	  "\t\t\t0\tkeep\t\t\t\t\t0", "unknown event type", NULL, NULL,
	  NULL, 0, false, 0, NULL },
	{ "no timestamp", "message.retrieved\t\tu\tINBOX\t\t1\t1\t\t0\t\t\t0"
	  "\tkeep\t\t\t\t\t0", "timestamp", NULL, NULL, NULL, 0, false,
	  0, NULL },
	{ "timestamp 0", "message.retrieved\t0\tu\tINBOX\t\t1\t1\t\t0\t\t\t0"
	  "\tkeep\t\t\t\t\t0", "timestamp", NULL, NULL, NULL, 0, false,
	  0, NULL },
	{ "negative timestamp", "message.retrieved\t-5\tu\tINBOX\t\t1\t1\t\t0"
	  "\t\t\t0\tkeep\t\t\t\t\t0", "timestamp", NULL, NULL, NULL, 0,
	  false, 0, NULL },
	{ "no user", "message.retrieved\t1795821228\t\tINBOX\t\t1\t1\t\t0\t\t"
	  "\t0\tkeep\t\t\t\t\t0", "user", NULL, NULL, NULL, 0, false, 0, NULL },
	{ "uid above 32 bits", "message.retrieved\t1795821228\tu\tINBOX\t\t"
	  "4294967296\t1\t\t0\t\t\t0\tkeep\t\t\t\t\t0", "uid", NULL, NULL,
	  NULL, 0, false, 0, NULL },
	{ "uid with a sign", "message.retrieved\t1795821228\tu\tINBOX\t\t+1\t"
	  "1\t\t0\t\t\t0\tkeep\t\t\t\t\t0", "uid", NULL, NULL, NULL, 0,
	  false, 0, NULL },
	{ "size above 64 bits", "message.retrieved\t1795821228\tu\tINBOX\t\t"
	  "1\t1\t\t18446744073709551616\t\t\t0\tkeep\t\t\t\t\t0", "size",
	  NULL, NULL, NULL, 0, false, 0, NULL },
	{ "empty size", "message.retrieved\t1795821228\tu\tINBOX\t\t1\t1\t\t"
	  "\t\t\t0\tkeep\t\t\t\t\t0", "size", NULL, NULL, NULL, 0, false,
	  0, NULL },
	{ "flag 2", "message.retrieved\t1795821228\tu\tINBOX\t\t1\t1\t\t0\t"
	  "\t\t2\tkeep\t\t\t\t\t0", "flag", NULL, NULL, NULL, 0, false,
	  0, NULL },
	{ "unknown policy", "message.retrieved\t1795821228\tu\tINBOX\t\t1\t1"
	  "\t\t0\t\t\t0\tforever\t\t\t\t\t0", "policy", NULL, NULL, NULL, 0,
	  false, 0, NULL },
	{ "bad retain_until", "message.retained\t1795821228\tu\tINBOX\t\t1\t"
	  "1\t\t0\t\t\t0\tkeep\t\tsoon\t\t\t0", "retain_until", NULL, NULL,
	  NULL, 0, false, 0, NULL },
	{ "empty dry_run", "message.retrieved\t1795821228\tu\tINBOX\t\t1\t1"
	  "\t\t0\t\t\t0\tkeep\t\t\t\t\t", "dry_run", NULL, NULL, NULL, 0,
	  false, 0, NULL },
};

static void check_str_field(size_t idx, const char *name, const char *key,
			    const char *got, const char *expected)
{
	if (expected == NULL)
		return;
	if (got == NULL || strcmp(got, expected) != 0)
		case_fail(idx, name, "%s \"%s\", expected \"%s\"", key,
			  got == NULL ? "(null)" : got, expected);
}

static void test_decode(void **state)
{
	const struct decode_case *c = *state;
	size_t idx = (size_t)(c - decode_cases);
	struct retention_event event;
	const char *error = NULL;
	char *fields = strdup(c->fields), *json;
	char id[RETENTION_EVENT_ID_SIZE];
	int ret;

	assert_non_null(fields);
	ret = retention_event_decode(fields, &event, &error);
	if (c->error != NULL) {
		if (ret != -1)
			case_fail(idx, c->name, "decoded, expected \"%s\"",
				  c->error);
		if (error == NULL || strstr(error, c->error) == NULL)
			case_fail(idx, c->name, "error \"%s\", expected "
				  "\"%s\"", error == NULL ? "(null)" : error,
				  c->error);
		free(fields);
		return;
	}
	if (ret != 0)
		case_fail(idx, c->name, "refused: %s", error);
	check_str_field(idx, c->name, "user", event.user, c->user);
	check_str_field(idx, c->name, "mailbox", event.mailbox, c->mailbox);
	check_str_field(idx, c->name, "message_id", event.message_id,
			c->message_id);
	if (event.uid != c->uid)
		case_fail(idx, c->name, "uid %u, expected %u", event.uid,
			  c->uid);
	if (event.seq != c->seq)
		case_fail(idx, c->name, "seq %u, expected %u", event.seq,
			  c->seq);
	if (c->check_json) {
		const char *expected_id = c->id != NULL ? c->id :
			event_cases[0].id;

		json = retention_event_to_json(&event);
		if (json == NULL || strcmp(json, event_cases[0].json) != 0)
			case_fail(idx, c->name, "JSON %s, expected %s",
				  json == NULL ? "(null)" : json,
				  event_cases[0].json);
		free(json);
		retention_event_id(&event, id);
		if (strcmp(id, expected_id) != 0)
			case_fail(idx, c->name, "id %s, expected %s", id,
				  expected_id);
	}
	free(fields);
}

/* ---- compact spool records (retention_event_render) ---- */

struct render_case {
	const char *name;
	const char *stored;
	size_t stored_len;	/* 0: strlen(stored) */
	int ret;
	const char *body;	/* the expected body when ret is 1 */
};

#define RECORD_RETRIEVED RETENTION_EVENT_RECORD_PREFIX FIELDS_RETRIEVED

static const struct render_case render_cases[] = {
	{ "compact record", RECORD_RETRIEVED, 0, 1, NULL /* event_cases[0] */ },
	{ "JSON body as stored", "{\"type\":\"message.retrieved\"}", 0, 0,
	  NULL },
	{ "empty body as stored", "", 0, 0, NULL },
	{ "prefix without the TAB", "pop3-retention-event 1", 0, 0, NULL },
	{ "newer record version as stored", "pop3-retention-event 2\t"
	  FIELDS_RETRIEVED, 0, 0, NULL },
	{ "prefix only", RETENTION_EVENT_RECORD_PREFIX, 0, -1, NULL },
	{ "bad fields", RETENTION_EVENT_RECORD_PREFIX "message.read\t1", 0,
	  -1, NULL },
	{ "NUL inside", RECORD_RETRIEVED "\0x", sizeof(RECORD_RETRIEVED) + 1,
	  -1, NULL },
};

static void test_render(void **state)
{
	const struct render_case *c = *state;
	size_t idx = (size_t)(c - render_cases);
	size_t len = c->stored_len != 0 ? c->stored_len : strlen(c->stored);
	const char *expected = c->body != NULL ? c->body : event_cases[0].json;
	unsigned char *body = NULL;
	size_t body_len = 0;
	const char *error = NULL;
	int ret;

	ret = retention_event_render(NULL, (const unsigned char *)c->stored,
				     len, &body, &body_len, &error);
	if (ret != c->ret)
		case_fail(idx, c->name, "returned %d, expected %d (%s)", ret,
			  c->ret, error == NULL ? "no error" : error);
	if (ret == 1) {
		if (body == NULL || body_len != strlen(expected) ||
		    memcmp(body, expected, body_len) != 0 ||
		    body[body_len] != '\0')
			case_fail(idx, c->name, "body %.*s, expected %s",
				  (int)body_len, body == NULL ? "" :
				  (const char *)body, expected);
	} else if (body != NULL) {
		case_fail(idx, c->name, "a body without rendering");
	}
	if (ret == -1 && (error == NULL || *error == '\0'))
		case_fail(idx, c->name, "no error message");
	free(body);
}

int main(void)
{
	int failed = 0;

	failed += RUN_TABLE("retention_event_to_json", test_event_json,
			    event_cases);
	failed += RUN_TABLE("retention_event_to_json round trip",
			    test_event_roundtrip, event_cases);
	failed += RUN_TABLE("retention_event_id known answers",
			    test_event_id, event_cases);
	failed += RUN_TABLE("retention_event_id identity", test_id_pair,
			    id_cases);
	failed += RUN_TABLE("event strings", test_string, string_cases);
	failed += RUN_TABLE("retention_time_format", test_time, time_cases);
	failed += RUN_TABLE("retention_event_decode", test_decode,
			    decode_cases);
	failed += RUN_TABLE("retention_event_render", test_render,
			    render_cases);
	return failed == 0 ? 0 : 1;
}
