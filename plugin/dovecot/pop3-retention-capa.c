/* Post-login CAPA: an ostream filter that adds RFC 2449 EXPIRE.

   pop3's cmd_capa() sends its whole reply, "+OK\r\n" POP3_CAPABILITY_REPLY
   ".\r\n", with one client_send_line(), i.e. one o_stream_send(). The
   filter compares each write with exactly those bytes and, on a match,
   writes them with "EXPIRE <value>\r\n" in front of the final ".\r\n".
   Nothing else can match: message bodies are written by fetch_callback(),
   which breaks every write in front of a dot at the start of a line, so no
   body write contains "\r\n.\r\n".

   Byte accounting: the caller is told that the original length was taken
   (pop3's client_send_line() asserts it), while ostream.offset counts the
   bytes that go to the wire, EXPIRE line included: the filter's offset
   always equals its parent's (plus pending). pop3's RETR/TOP byte counters
   subtract an offset taken before the message from one taken after it, and
   while a message streams client->output is the parent itself (see
   pop3_retention_capa_bypass_begin()), so the two offsets must agree.

   Partial writes: if the parent takes only part of the rewritten reply,
   the filter keeps the rest in "pending" and owns it from then on. Pending
   goes out before anything else: the next sendv() and every flush() push
   it first. If some of it still does not fit, the parent is full and would
   not take new data either, so sendv() takes nothing (returns 0) and
   flush() returns 0, exactly as the parent itself would answer; order is
   kept and nobody is told data was written while it is still ours.
   get_buffer_used_size() counts pending, so pop3's output throttling sees
   it. Pending never strands: it exists only while the parent is full, and
   a full parent has its write io armed; when that fires it calls its flush
   callback, pop3's client_output(), which flushes client->output and so
   this filter. (pop3 2.3.19 creates its fd ostream with an unlimited
   buffer, so there the parent always takes everything and pending stays
   empty; the path makes the filter correct for any parent, e.g. another
   plugin's filter in between.)

   Only libdovecot and the struct client layout are used: this file is
   compiled into the pop3 plugin, which must load without resolving data
   symbols of the pop3 binary. */

#include "lib.h"
#include "buffer.h"
#include "ostream-private.h"
#include "pop3-common.h"
#include "pop3-capability.h"
#include "pop3-retention-capa.h"

#define CAPA_REPLY "+OK\r\n" POP3_CAPABILITY_REPLY ".\r\n"
#define CAPA_REPLY_END ".\r\n"

struct capa_ostream {
	struct ostream_private ostream;

	/* "EXPIRE <value>\r\n" */
	char *expire_line;
	size_t expire_line_len;
	/* Tail of a rewritten reply that the parent did not take yet. */
	buffer_t *pending;
};

static bool
iov_equals(const struct const_iovec *iov, unsigned int iov_count,
	   const void *data, size_t size)
{
	size_t pos = 0;
	unsigned int i;

	for (i = 0; i < iov_count; i++) {
		if (iov[i].iov_len > size - pos)
			return FALSE;
		if (memcmp(iov[i].iov_base, CONST_PTR_OFFSET(data, pos),
			   iov[i].iov_len) != 0)
			return FALSE;
		pos += iov[i].iov_len;
	}
	return pos == size;
}

/* Push pending to the parent. Returns 1 when nothing is left, 0 when the
   parent is full, -1 on error (copied to the filter). */
static int capa_ostream_send_pending(struct capa_ostream *cstream)
{
	struct ostream_private *stream = &cstream->ostream;
	ssize_t ret;

	if (cstream->pending->used == 0)
		return 1;
	ret = o_stream_send(stream->parent, cstream->pending->data,
			    cstream->pending->used);
	if (ret < 0) {
		o_stream_copy_error_from_parent(stream);
		return -1;
	}
	buffer_delete(cstream->pending, 0, (size_t)ret);
	return cstream->pending->used == 0 ? 1 : 0;
}

/* Like capa_ostream_send_pending(), but first makes room in the parent by
   flushing it when pending does not fit. */
static int capa_ostream_flush_pending(struct capa_ostream *cstream)
{
	struct ostream_private *stream = &cstream->ostream;
	int ret;

	if ((ret = capa_ostream_send_pending(cstream)) != 0)
		return ret;
	if (o_stream_flush(stream->parent) < 0) {
		o_stream_copy_error_from_parent(stream);
		return -1;
	}
	return capa_ostream_send_pending(cstream);
}

static void
capa_ostream_keep_rest(struct capa_ostream *cstream,
		       const struct const_iovec *iov, unsigned int iov_count,
		       size_t skip)
{
	unsigned int i;

	for (i = 0; i < iov_count; i++) {
		if (skip >= iov[i].iov_len) {
			skip -= iov[i].iov_len;
			continue;
		}
		buffer_append(cstream->pending,
			      CONST_PTR_OFFSET(iov[i].iov_base, skip),
			      iov[i].iov_len - skip);
		skip = 0;
	}
}

static ssize_t
capa_ostream_send_rewritten(struct capa_ostream *cstream, size_t orig_size)
{
	struct ostream_private *stream = &cstream->ostream;
	struct const_iovec iov[3];
	size_t total;
	ssize_t ret;

	iov[0].iov_base = CAPA_REPLY;
	iov[0].iov_len = orig_size - strlen(CAPA_REPLY_END);
	iov[1].iov_base = cstream->expire_line;
	iov[1].iov_len = cstream->expire_line_len;
	iov[2].iov_base = CAPA_REPLY_END;
	iov[2].iov_len = strlen(CAPA_REPLY_END);
	total = iov[0].iov_len + iov[1].iov_len + iov[2].iov_len;

	if ((ret = o_stream_sendv(stream->parent, iov, N_ELEMENTS(iov))) < 0) {
		o_stream_copy_error_from_parent(stream);
		return -1;
	}
	if ((size_t)ret < total)
		capa_ostream_keep_rest(cstream, iov, N_ELEMENTS(iov), ret);
	stream->ostream.offset += total;
	return orig_size;
}

static ssize_t
capa_ostream_sendv(struct ostream_private *stream,
		   const struct const_iovec *iov, unsigned int iov_count)
{
	struct capa_ostream *cstream =
		container_of(stream, struct capa_ostream, ostream);
	const size_t capa_size = strlen(CAPA_REPLY);
	ssize_t ret;
	int pret;

	if ((pret = capa_ostream_flush_pending(cstream)) <= 0)
		return pret;

	if (iov_equals(iov, iov_count, CAPA_REPLY, capa_size))
		return capa_ostream_send_rewritten(cstream, capa_size);

	if ((ret = o_stream_sendv(stream->parent, iov, iov_count)) < 0) {
		o_stream_copy_error_from_parent(stream);
		return -1;
	}
	stream->ostream.offset += ret;
	return ret;
}

static int capa_ostream_flush(struct ostream_private *stream)
{
	struct capa_ostream *cstream =
		container_of(stream, struct capa_ostream, ostream);
	int ret;

	if ((ret = capa_ostream_flush_pending(cstream)) <= 0)
		return ret;
	return o_stream_flush_parent(stream);
}

static size_t
capa_ostream_get_buffer_used_size(const struct ostream_private *stream)
{
	const struct capa_ostream *cstream =
		container_of(stream, const struct capa_ostream, ostream);

	return cstream->pending->used +
		o_stream_get_buffer_used_size(stream->parent);
}

static void capa_ostream_destroy(struct iostream_private *stream)
{
	struct capa_ostream *cstream =
		container_of(stream, struct capa_ostream, ostream.iostream);

	buffer_free(&cstream->pending);
	i_free(cstream->expire_line);
	o_stream_unref(&cstream->ostream.parent);
}

static bool capa_value_is_valid(const char *value)
{
	size_t i;

	for (i = 0; value[i] != '\0'; i++) {
		if (i == POP3_RETENTION_CAPA_VALUE_MAX ||
		    value[i] < 0x20 || value[i] > 0x7e)
			return FALSE;
	}
	return i > 0;
}

void pop3_retention_capa_install(struct client *client,
				 const char *expire_value)
{
	struct capa_ostream *cstream;
	struct ostream *output;

	/* A CR or LF here would let the value forge protocol lines. */
	i_assert(capa_value_is_valid(expire_value));

	cstream = i_new(struct capa_ostream, 1);
	cstream->expire_line = i_strdup_printf("EXPIRE %s\r\n", expire_value);
	cstream->expire_line_len = strlen(cstream->expire_line);
	cstream->pending = buffer_create_dynamic(default_pool, 128);
	cstream->ostream.sendv = capa_ostream_sendv;
	cstream->ostream.flush = capa_ostream_flush;
	cstream->ostream.get_buffer_used_size =
		capa_ostream_get_buffer_used_size;
	cstream->ostream.iostream.destroy = capa_ostream_destroy;

	/* o_stream_create() copies the parent's flush callback, buffer
	   limit and error handling mode, and takes its own reference. */
	output = o_stream_create(&cstream->ostream, client->output,
				 o_stream_get_fd(client->output));
	output->offset = client->output->offset;
	o_stream_unref(&client->output);
	client->output = output;
}

static struct capa_ostream *capa_ostream_get(struct ostream *output)
{
	if (output == NULL || output->real_stream->sendv != capa_ostream_sendv)
		return NULL;
	return container_of(output->real_stream, struct capa_ostream, ostream);
}

struct ostream *pop3_retention_capa_bypass_begin(struct client *client)
{
	struct capa_ostream *cstream = capa_ostream_get(client->output);
	struct ostream *filter;

	/* pending bytes must go out before anything else: keep the
	   filter in the path then */
	if (cstream == NULL || cstream->pending->used > 0)
		return NULL;
	filter = client->output;
	/* borrowed: the filter holds the parent's reference */
	client->output = cstream->ostream.parent;
	return filter;
}

void pop3_retention_capa_bypass_end(struct client *client,
				    struct ostream *filter)
{
	struct capa_ostream *cstream = capa_ostream_get(filter);

	if (cstream != NULL && client->output == cstream->ostream.parent) {
		/* what pop3 wrote meanwhile went to the parent */
		filter->offset = client->output->offset;
		client->output = filter;
	}
}
