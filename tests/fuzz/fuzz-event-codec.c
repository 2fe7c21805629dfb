/* libFuzzer target: the drop/outbox event line codec
   (retention-event-codec.c), the real retention_event_decode() and
   retention_event_encode().

   Input: one line (a NUL or LF in it is passed as is: decode() sees the
   line up to the NUL, as a reader of a drop file would after splitting
   at LF). Invariant: what decodes, encodes (into
   RETENTION_EVENT_ENCODED_MAX, never failing) to a line that decodes to
   the same event, and encodes again to the same line. */

#include "pop3-retention-config.h"
#include "retention-event-codec.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char line1[RETENTION_EVENT_ENCODED_MAX];
static char line2[RETENTION_EVENT_ENCODED_MAX];
static char copy[RETENTION_EVENT_ENCODED_MAX];

static void check_str(const char *a, const char *b)
{
	if ((a == NULL) != (b == NULL) || (a != NULL && strcmp(a, b) != 0))
		abort();
}

static void check_same(const struct retention_event *a,
		       const struct retention_event *b)
{
	if (a->type != b->type || a->timestamp != b->timestamp ||
	    a->uid != b->uid || a->uidvalidity != b->uidvalidity ||
	    a->size != b->size || a->arrived_at != b->arrived_at ||
	    a->retrieved_at != b->retrieved_at ||
	    a->first_retrieval != b->first_retrieval ||
	    a->policy != b->policy || a->retain_until != b->retain_until ||
	    a->dry_run != b->dry_run || a->seq != b->seq)
		abort();
	check_str(a->user, b->user);
	check_str(a->mailbox, b->mailbox);
	check_str(a->uidl, b->uidl);
	check_str(a->message_id, b->message_id);
	check_str(a->reason, b->reason);
	check_str(a->session, b->session);
	check_str(a->remote_ip, b->remote_ip);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct retention_event event, event2;
	const char *error;
	char *input;
	int len, len2;

	input = malloc(size + 1);
	if (input == NULL)
		abort();
	memcpy(input, data, size);
	input[size] = '\0';
	if (retention_event_decode(input, &event, &error) < 0) {
		if (error == NULL || error[0] == '\0')
			abort();
		free(input);
		return 0;
	}
	len = retention_event_encode(&event, line1, sizeof(line1));
	if (len < 0 || (size_t)len != strlen(line1) ||
	    strpbrk(line1, "\r\n") != NULL)
		abort();
	memcpy(copy, line1, (size_t)len + 1);
	if (retention_event_decode(copy, &event2, &error) < 0)
		abort();
	check_same(&event, &event2);
	len2 = retention_event_encode(&event2, line2, sizeof(line2));
	if (len2 != len || memcmp(line1, line2, (size_t)len) != 0)
		abort();
	/* one octet short of the room it needs: fails cleanly */
	if (retention_event_encode(&event, line2, (size_t)len) != -1 ||
	    line2[0] != '\0')
		abort();
	free(input);
	return 0;
}
