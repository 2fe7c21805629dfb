/* The event's fields as text (see the header). */

#include "pop3-retention-config.h"
#include "retention-event-codec.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* ---- encoding ---- */

/* A bounded writer: once a write does not fit, failed is set and
   nothing more is written. */
struct field_writer {
	char *buf;
	size_t size, len;
	bool failed;
};

static void writer_append(struct field_writer *w, const char *data,
			  size_t len)
{
	if (w->failed || len >= w->size - w->len) {
		w->failed = true;
		return;
	}
	memcpy(w->buf + w->len, data, len);
	w->len += len;
}

static void writer_append_c(struct field_writer *w, char c)
{
	writer_append(w, &c, 1);
}

/* Decimal, as "%llu" would write it, without printf. */
static void writer_append_uint(struct field_writer *w, uint64_t value)
{
	char digits[20];
	size_t pos = sizeof(digits);

	do {
		digits[--pos] = (char)('0' + value % 10);
		value /= 10;
	} while (value > 0);
	writer_append(w, digits + pos, sizeof(digits) - pos);
}

/* Octets of str to encode: all of it, or RETENTION_EVENT_STRING_MAX
   moved back to the start of the UTF-8 character it would split. */
static size_t string_capped_len(const char *str)
{
	size_t len = strnlen(str, RETENTION_EVENT_STRING_MAX + 1);
	unsigned int back;

	if (len <= RETENTION_EVENT_STRING_MAX)
		return len;
	len = RETENTION_EVENT_STRING_MAX;
	/* str[len] is the first octet left out: if it continues a
	   character, that character starts at most 3 octets earlier */
	for (back = 0; back < 3 && len > 0 &&
	     ((unsigned char)str[len] & 0xc0) == 0x80; back++)
		len--;
	if (((unsigned char)str[len] & 0xc0) == 0x80)
		len = RETENTION_EVENT_STRING_MAX;	/* not UTF-8 */
	return len;
}

static void encode_str(struct field_writer *w, const char *value)
{
	size_t i, start = 0, len;
	char esc[2] = { '\001', '\0' };

	writer_append_c(w, '\t');
	if (value == NULL)
		return;
	len = string_capped_len(value);
	for (i = 0; i < len; i++) {
		switch (value[i]) {
		case '\001':
			esc[1] = '1';
			break;
		case '\t':
			esc[1] = 't';
			break;
		case '\r':
			esc[1] = 'r';
			break;
		case '\n':
			esc[1] = 'n';
			break;
		default:
			continue;
		}
		writer_append(w, value + start, i - start);
		writer_append(w, esc, sizeof(esc));
		start = i + 1;
	}
	writer_append(w, value + start, len - start);
}

static void encode_num(struct field_writer *w, uint64_t value)
{
	writer_append_c(w, '\t');
	writer_append_uint(w, value);
}

/* The decoder takes a time as a positive number: anything else is
   unknown, written empty. */
static void encode_time(struct field_writer *w, time_t value)
{
	writer_append_c(w, '\t');
	if (value > 0)
		writer_append_uint(w, (uint64_t)value);
}

static void encode_name(struct field_writer *w, const char *name)
{
	writer_append(w, name, strlen(name));
}

int retention_event_encode(const struct retention_event *event, char *buf,
			   size_t size)
{
	struct field_writer w = { .buf = buf, .size = size };

	if (size == 0)
		return -1;
	/* the order is the format: retention_event_decode() reads it */
	encode_name(&w, retention_event_type_name(event->type));
	encode_time(&w, event->timestamp);
	encode_str(&w, event->user);
	encode_str(&w, event->mailbox);
	encode_str(&w, event->uidl);
	encode_num(&w, event->uid);
	encode_num(&w, event->uidvalidity);
	encode_str(&w, event->message_id);
	encode_num(&w, event->size);
	encode_time(&w, event->arrived_at);
	encode_time(&w, event->retrieved_at);
	encode_num(&w, event->first_retrieval ? 1 : 0);
	writer_append_c(&w, '\t');
	encode_name(&w, retention_policy_kind_name(event->policy));
	encode_str(&w, event->reason);
	encode_time(&w, event->retain_until);
	encode_str(&w, event->session);
	encode_str(&w, event->remote_ip);
	encode_num(&w, event->dry_run ? 1 : 0);
	/* empty when there is none */
	writer_append_c(&w, '\t');
	if (event->seq != 0)
		writer_append_uint(&w, event->seq);
	if (w.failed) {
		buf[0] = '\0';
		return -1;
	}
	buf[w.len] = '\0';
	return (int)w.len;
}

/* ---- decoding ---- */

/* Undo the tab-escaping of one field in place. A trailing lone \001
   is dropped; an unknown escape stands for the character itself. A NUL
   ends the string there, as it does for every reader of the field. */
static void field_unescape(char *field)
{
	char *src = strchr(field, '\001'), *dest = src;

	if (src == NULL)
		return;
	while (*src != '\0') {
		if (*src != '\001') {
			*dest++ = *src++;
			continue;
		}
		src++;
		switch (*src) {
		case '\0':
			continue;
		case '0':
			*dest++ = '\0';
			break;
		case '1':
			*dest++ = '\001';
			break;
		case 't':
			*dest++ = '\t';
			break;
		case 'r':
			*dest++ = '\r';
			break;
		case 'n':
			*dest++ = '\n';
			break;
		default:
			*dest++ = *src;
			break;
		}
		src++;
	}
	*dest = '\0';
}

/* Decimal digits only (no sign, no blanks), at most max. */
static int parse_uint(const char *s, uint64_t max, uint64_t *value_r)
{
	uint64_t v = 0;

	if (*s == '\0')
		return -1;
	for (; *s != '\0'; s++) {
		if (*s < '0' || *s > '9')
			return -1;
		if (v > (max - (uint64_t)(*s - '0')) / 10)
			return -1;
		v = v * 10 + (uint64_t)(*s - '0');
	}
	*value_r = v;
	return 0;
}

static int parse_uint32(const char *s, uint32_t *value_r)
{
	uint64_t v;

	if (parse_uint(s, UINT32_MAX, &v) < 0)
		return -1;
	*value_r = (uint32_t)v;
	return 0;
}

/* Empty: unknown (0); otherwise a positive number of seconds. */
static int parse_time(const char *s, time_t *time_r)
{
	/* time_t holds at least 31 bits on every host we build on */
	const uint64_t max = sizeof(time_t) >= 8 ? (uint64_t)INT64_MAX :
		(uint64_t)INT32_MAX;
	uint64_t v;

	if (*s == '\0') {
		*time_r = 0;
		return 0;
	}
	if (parse_uint(s, max, &v) < 0 || v == 0)
		return -1;
	*time_r = (time_t)v;
	return 0;
}

static int parse_bool(const char *s, bool *value_r)
{
	if ((s[0] != '0' && s[0] != '1') || s[1] != '\0')
		return -1;
	*value_r = s[0] == '1';
	return 0;
}

static const char *field_str(const char *s)
{
	return *s == '\0' ? NULL : s;
}

static int parse_type(const char *s, enum retention_event_type *type_r)
{
	unsigned int bit;

	for (bit = 1; bit <= RETENTION_EVENT_ALL; bit <<= 1) {
		if (strcmp(retention_event_type_name(bit), s) == 0) {
			*type_r = (enum retention_event_type)bit;
			return 0;
		}
	}
	return -1;
}

static int parse_policy(const char *s, enum retention_policy_kind *policy_r)
{
	static const enum retention_policy_kind kinds[] = {
		RETENTION_POLICY_OFF, RETENTION_POLICY_DELETE_AFTER_DOWNLOAD,
		RETENTION_POLICY_KEEP,
	};
	unsigned int i;

	for (i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		if (strcmp(retention_policy_kind_name(kinds[i]), s) == 0) {
			*policy_r = kinds[i];
			return 0;
		}
	}
	return -1;
}

/* The string fields' positions: user, mailbox, uidl, message_id,
   reason, session, remote_ip. */
static const unsigned int string_fields[] = { 2, 3, 4, 7, 13, 15, 16 };

/* per thread: the message of the last count mismatch */
static __thread char count_error[64];

int retention_event_decode(char *fields, struct retention_event *event_r,
			   const char **error_r)
{
	struct retention_event *e = event_r;
	char *f[RETENTION_EVENT_FIELDS], *p = fields;
	unsigned int n = 0, count;
	uint64_t size;

	memset(e, 0, sizeof(*e));
	for (;;) {
		char *tab = strchr(p, '\t');

		if (n < RETENTION_EVENT_FIELDS)
			f[n] = p;
		n++;
		if (tab == NULL)
			break;
		*tab = '\0';
		p = tab + 1;
	}
	if (*fields == '\0')
		n = 0;	/* an empty line has no field at all */
	if (n != RETENTION_EVENT_FIELDS && n != RETENTION_EVENT_FIELDS_NO_SEQ) {
		snprintf(count_error, sizeof(count_error),
			 "%u event fields, expected %d", n,
			 RETENTION_EVENT_FIELDS);
		*error_r = count_error;
		return -1;
	}
	count = n;
	for (n = 0; n < count; n++)
		field_unescape(f[n]);
	/* the encoder caps them: a longer one comes from a producer that
	   is not ours, and is cut as the encoder would have cut it */
	for (n = 0; n < sizeof(string_fields) / sizeof(string_fields[0]);
	     n++) {
		char *str = f[string_fields[n]];

		str[string_capped_len(str)] = '\0';
	}

	if (parse_type(f[0], &e->type) < 0) {
		*error_r = "unknown event type";
		return -1;
	}
	if (parse_time(f[1], &e->timestamp) < 0 || e->timestamp == 0) {
		*error_r = "invalid timestamp";
		return -1;
	}
	e->user = field_str(f[2]);
	e->mailbox = field_str(f[3]);
	e->uidl = field_str(f[4]);
	if (e->user == NULL || parse_uint32(f[5], &e->uid) < 0 ||
	    parse_uint32(f[6], &e->uidvalidity) < 0) {
		*error_r = "invalid user, uid or uidvalidity";
		return -1;
	}
	e->message_id = field_str(f[7]);
	if (parse_uint(f[8], UINT64_MAX, &size) < 0 ||
	    parse_time(f[9], &e->arrived_at) < 0 ||
	    parse_time(f[10], &e->retrieved_at) < 0 ||
	    parse_bool(f[11], &e->first_retrieval) < 0 ||
	    parse_policy(f[12], &e->policy) < 0) {
		*error_r = "invalid size, time, flag or policy";
		return -1;
	}
	e->size = size;
	e->reason = field_str(f[13]);
	e->session = field_str(f[15]);
	e->remote_ip = field_str(f[16]);
	if (parse_time(f[14], &e->retain_until) < 0 ||
	    parse_bool(f[17], &e->dry_run) < 0) {
		*error_r = "invalid retain_until or dry_run";
		return -1;
	}
	/* empty: none (0) */
	if (count > RETENTION_EVENT_FIELDS_NO_SEQ && f[18][0] != '\0' &&
	    parse_uint32(f[18], &e->seq) < 0) {
		*error_r = "invalid seq";
		return -1;
	}
	return 0;
}
