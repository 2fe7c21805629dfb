/* The TRANSACTION state: STAT, LIST, UIDL, RETR, TOP, DELE, NOOP,
   RSET, CAPA, QUIT (UPDATE). */

#include "shim-server.h"
#include "shim-log.h"
#include "shim-maildir.h"
#include "shim-session.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* A decimal number of at most 9 digits, nothing else. */
static bool parse_number(const char *text, unsigned long *value_r)
{
	unsigned long value = 0;
	size_t i;

	if (*text == '\0' || strlen(text) > 9)
		return false;
	for (i = 0; text[i] != '\0'; i++) {
		if (text[i] < '0' || text[i] > '9')
			return false;
		value = value * 10 + (unsigned long)(text[i] - '0');
	}
	*value_r = value;
	return true;
}

/* The message number in text, listed and not deleted; replies -ERR and
   returns 0 otherwise. */
static unsigned int get_msgnum(struct shim_client *client, const char *text)
{
	unsigned long n;

	if (!parse_number(text, &n)) {
		shim_client_reply(client, "-ERR Invalid message number: %.40s",
				  text);
		return 0;
	}
	if (n == 0 || n > shim_session_count(client->session)) {
		shim_client_reply(client, "-ERR There's no message %lu.", n);
		return 0;
	}
	if (shim_session_deleted(client->session, (unsigned int)n)) {
		shim_client_reply(client, "-ERR Message is deleted.");
		return 0;
	}
	return (unsigned int)n;
}

static void cmd_stat(struct shim_client *client)
{
	unsigned int i, count = shim_session_count(client->session), n = 0;
	uint64_t size = 0;

	for (i = 1; i <= count; i++) {
		if (shim_session_deleted(client->session, i))
			continue;
		n++;
		size += shim_session_msg(client->session, i)->size;
	}
	shim_client_reply(client, "+OK %u %" PRIu64, n, size);
}

/* LIST and UIDL share their shape. */
static void cmd_list(struct shim_client *client, const char *args, bool uidl)
{
	unsigned int i, count = shim_session_count(client->session);

	if (*args != '\0') {
		const struct shim_maildir_msg *msg;
		unsigned int n = get_msgnum(client, args);

		if (n == 0)
			return;
		msg = shim_session_msg(client->session, n);
		if (uidl)
			shim_client_reply(client, "+OK %u %s", n, msg->uidl);
		else
			shim_client_reply(client, "+OK %u %" PRIu64, n,
					  msg->size);
		return;
	}
	shim_client_reply(client, "+OK");
	for (i = 1; i <= count; i++) {
		const struct shim_maildir_msg *msg;

		if (shim_session_deleted(client->session, i))
			continue;
		msg = shim_session_msg(client->session, i);
		if (uidl)
			shim_client_reply(client, "%u %s", i, msg->uidl);
		else
			shim_client_reply(client, "%u %" PRIu64, i, msg->size);
	}
	shim_client_reply(client, ".");
}

static void stream_end(struct shim_client *client)
{
	shim_msg_stream_close(&client->stream);
	client->stream_done = false;
}

void shim_trans_stream_more(struct shim_client *client)
{
	char buf[2 * SHIM_READ_CHUNK + 8], error[256];

	while (client->stream != NULL && !client->stream_done &&
	       shim_client_output_pending(client) < SHIM_OUTPUT_HIGH_WATER) {
		ssize_t n = shim_msg_stream_read(client->stream, buf,
						 sizeof(buf), error,
						 sizeof(error));

		if (n < 0) {
			/* the +OK is out: the response cannot become an
			   -ERR; the connection ends without UPDATE */
			shim_error("session=%s: reading message %u failed: %s",
				   client->id, client->stream_msgnum, error);
			stream_end(client);
			shim_client_close_after_flush(client);
			return;
		}
		if (n == 0) {
			client->stream_done = true;
			break;
		}
		shim_client_write(client, buf, (size_t)n);
	}
	if (client->stream == NULL || !client->stream_done ||
	    shim_client_output_pending(client) > 0)
		return;
	/* everything left the output buffer: the download is complete
	   (an aborted transfer never gets here) */
	if (shim_msg_stream_whole(client->stream)) {
		shim_session_retrieved(client->session, client->stream_msgnum,
				       client->stream_is_top);
	}
	stream_end(client);
	shim_client_resume(client);
}

static void cmd_retr(struct shim_client *client, const char *args,
		     bool top)
{
	char msgnum_text[16], error[256];
	const char *lines_text = NULL;
	unsigned long lines = 0;
	unsigned int n;
	size_t len;

	if (top) {
		lines_text = strchr(args, ' ');
		if (lines_text == NULL || !parse_number(lines_text + 1, &lines)) {
			shim_client_reply(client, "-ERR Invalid arguments: "
					  "TOP msg lines.");
			return;
		}
		len = (size_t)(lines_text - args);
	} else {
		len = strlen(args);
	}
	if (len >= sizeof(msgnum_text)) {
		shim_client_reply(client, "-ERR Invalid message number.");
		return;
	}
	memcpy(msgnum_text, args, len);
	msgnum_text[len] = '\0';
	n = get_msgnum(client, msgnum_text);
	if (n == 0)
		return;
	client->stream = shim_msg_stream_open(
		shim_session_maildir(client->session),
		shim_session_maildir_idx(client->session, n),
		top ? (long)lines : -1, error, sizeof(error));
	if (client->stream == NULL) {
		shim_error("session=%s: message %u: %s", client->id, n, error);
		shim_client_reply(client, "-ERR [SYS/TEMP] The message can't "
				  "be read.");
		return;
	}
	client->stream_msgnum = n;
	client->stream_is_top = top;
	client->stream_done = false;
	client->busy = true;
	if (top)
		shim_client_reply(client, "+OK");
	else
		shim_client_reply(client, "+OK %" PRIu64 " octets",
				  shim_session_msg(client->session, n)->size);
	shim_trans_stream_more(client);
}

static void cmd_quit(struct shim_client *client)
{
	/* UPDATE (RFC 1939 section 6) */
	if (shim_session_update(client->session) < 0) {
		shim_client_reply(client, "-ERR [SYS/TEMP] Some deleted "
				  "messages were not removed.");
	} else {
		shim_client_reply(client, "+OK Logging out.");
	}
	shim_session_close(&client->session);
	shim_client_close_after_flush(client);
}

void shim_trans_command(struct shim_client *client, const char *name,
			const char *args)
{
	if (strcasecmp(name, "STAT") == 0) {
		cmd_stat(client);
	} else if (strcasecmp(name, "LIST") == 0) {
		cmd_list(client, args, false);
	} else if (strcasecmp(name, "UIDL") == 0) {
		cmd_list(client, args, true);
	} else if (strcasecmp(name, "RETR") == 0) {
		cmd_retr(client, args, false);
	} else if (strcasecmp(name, "TOP") == 0) {
		cmd_retr(client, args, true);
	} else if (strcasecmp(name, "DELE") == 0) {
		unsigned int n = get_msgnum(client, args);

		if (n == 0)
			return;
		shim_session_dele(client->session, n);
		shim_client_reply(client, "+OK Marked to be deleted.");
	} else if (strcasecmp(name, "NOOP") == 0) {
		shim_client_reply(client, "+OK");
	} else if (strcasecmp(name, "RSET") == 0) {
		shim_session_rset(client->session);
		shim_client_reply(client, "+OK");
	} else if (strcasecmp(name, "CAPA") == 0) {
		shim_capa_reply(client);
	} else if (strcasecmp(name, "QUIT") == 0) {
		cmd_quit(client);
	} else {
		shim_client_reply(client, "-ERR Unknown command.");
	}
}

void shim_trans_disconnect(struct shim_client *client)
{
	if (client->stream != NULL)
		stream_end(client);
	/* without QUIT: no UPDATE, nothing removed (RFC 1939 section 6) */
	shim_session_close(&client->session);
}
