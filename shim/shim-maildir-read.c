/* Reading a message: its RFC 1939 size, its RETR or TOP response and
   its Message-ID, a chunk at a time (SHIM_READ_CHUNK), never the whole
   message at once. See shim-maildir.h.

   One converter, convert(), makes both the size and the response, so a
   listed size is by construction what RETR sends before dot-stuffing.
   A line end is "\n" with or without a "\r" before it; a bare "\r" is
   data and is sent as it is. */

#define _GNU_SOURCE /* asprintf() */

#include "pop3-retention-config.h"
#include "shim-maildir.h"
#include "shim-maildir-private.h"
#include "shim-params.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

/* the terminator: a CRLF ending an unfinished last line, then ".\r\n" */
#define TERMINATOR_MAX 5

/* The CRLF conversion of one message, across read() boundaries. */
struct convert_state {
	/* the previous octet of the file ('\n' at the start) */
	char prev;
	bool in_header;
	/* octets of the current line so far */
	uint64_t line_len;
	/* TOP: body lines still to send; -1 for every line (RETR) */
	long lines_left;
	/* false when counting the size, which excludes dot-stuffing */
	bool stuff;
};

struct shim_msg_stream {
	int fd;
	/* "message <n> of <maildir>", for errors */
	char *name;
	struct convert_state cs;
	/* the file's size at open, and the octets read so far */
	off_t file_size, offset;
	bool eof, limit_reached, finished, whole;
	/* the one chunk read and not yet converted */
	size_t chunk_pos, chunk_len;
	char chunk[SHIM_READ_CHUNK];
};

/* Convert in[0..in_len) for sending, into out when not NULL (room for
   2 octets per input octet), counting the output in *out_len. Returns
   the input octets consumed: fewer than in_len when TOP's line count
   ran out. */
static size_t convert(struct convert_state *cs, const char *in, size_t in_len,
		      char *out, size_t *out_len)
{
	size_t i, n = *out_len;
	char c;

	for (i = 0; i < in_len; i++) {
		if (cs->lines_left == 0 && !cs->in_header)
			break;
		c = in[i];
		if (c == '\n') {
			bool blank = cs->line_len == 0 ||
				     (cs->line_len == 1 && cs->prev == '\r');

			if (cs->prev != '\r') {
				if (out != NULL)
					out[n] = '\r';
				n++;
			}
			if (out != NULL)
				out[n] = c;
			n++;
			if (cs->in_header) {
				if (blank)
					cs->in_header = false;
			} else if (cs->lines_left > 0) {
				cs->lines_left--;
			}
			cs->line_len = 0;
		} else {
			if (c == '.' && cs->prev == '\n' && cs->stuff) {
				if (out != NULL)
					out[n] = '.';
				n++;
			}
			if (out != NULL)
				out[n] = c;
			n++;
			cs->line_len++;
		}
		cs->prev = c;
	}
	*out_len = n;
	return i;
}

static int read_full(int fd, char *buf, size_t size, size_t *len_r)
{
	ssize_t ret;

	do {
		ret = read(fd, buf, size);
	} while (ret < 0 && errno == EINTR);
	if (ret < 0)
		return -1;
	*len_r = (size_t)ret;
	return 0;
}

/* The RFC 1939 size of the file at path, by reading it. Returns 1, 0
   when the file vanished, -1 with error. */
int shim_msg_size_read(const char *path, uint64_t *size_r, char *error,
		       size_t error_size)
{
	struct convert_state cs = {'\n', false, 0, -1, false};
	char *buf;
	size_t len, out;
	uint64_t size = 0;
	int fd, ret = 0;

	fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		shim_maildir_error(error, error_size, "open(%s) failed: %s",
				   path, strerror(errno));
		return errno == ENOENT ? 0 : -1;
	}
	buf = malloc(SHIM_READ_CHUNK);
	if (buf == NULL) {
		close(fd);
		shim_maildir_error(error, error_size,
				   "out of memory reading %s", path);
		return -1;
	}
	for (;;) {
		if (read_full(fd, buf, SHIM_READ_CHUNK, &len) < 0) {
			shim_maildir_error(error, error_size,
					   "read(%s) failed: %s", path,
					   strerror(errno));
			ret = -1;
			break;
		}
		if (len == 0) {
			ret = 1;
			break;
		}
		out = 0;
		(void)convert(&cs, buf, len, NULL, &out);
		size += out;
	}
	free(buf);
	close(fd);
	*size_r = size;
	return ret;
}

struct shim_msg_stream *shim_msg_stream_open(struct shim_maildir *md,
					     unsigned int idx, long top_lines,
					     char *error, size_t error_size)
{
	struct shim_msg_stream *stream;
	struct stat st;
	int fd;

	if ((fd = shim_maildir_msg_open(md, idx, error, error_size)) < 0)
		return NULL;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		shim_maildir_error(error, error_size,
				   "message %u of %s: not a regular file",
				   idx + 1, shim_maildir_path(md));
		close(fd);
		return NULL;
	}
	stream = calloc(1, sizeof(*stream));
	if (stream == NULL ||
	    asprintf(&stream->name, "message %u of %s", idx + 1,
		     shim_maildir_path(md)) < 0) {
		shim_maildir_error(error, error_size, "out of memory");
		free(stream);
		close(fd);
		return NULL;
	}
	stream->fd = fd;
	stream->file_size = st.st_size;
	stream->cs.prev = '\n';
	stream->cs.in_header = top_lines >= 0;
	stream->cs.lines_left = top_lines >= 0 ? top_lines : -1;
	stream->cs.stuff = true;
	return stream;
}

static int stream_fill(struct shim_msg_stream *stream, char *error,
		       size_t error_size)
{
	size_t len;

	if (read_full(stream->fd, stream->chunk, sizeof(stream->chunk),
		      &len) < 0) {
		shim_maildir_error(error, error_size, "read(%s) failed: %s",
				   stream->name, strerror(errno));
		return -1;
	}
	stream->chunk_pos = 0;
	stream->chunk_len = len;
	stream->offset += len;
	if (len == 0) {
		stream->eof = true;
		stream->whole = true;
	}
	return 0;
}

ssize_t shim_msg_stream_read(struct shim_msg_stream *stream, char *buf,
			     size_t size, char *error, size_t error_size)
{
	struct convert_state *cs = &stream->cs;
	size_t n = 0, take;

	if (stream->finished)
		return 0;
	if (size < 2 + TERMINATOR_MAX) {
		shim_maildir_error(error, error_size,
				   "message stream buffer too small");
		return -1;
	}
	if (stream->chunk_pos == stream->chunk_len &&
	    stream_fill(stream, error, error_size) < 0)
		return -1;
	/* each octet becomes at most two */
	take = (size - TERMINATOR_MAX) / 2;
	if (take > stream->chunk_len - stream->chunk_pos)
		take = stream->chunk_len - stream->chunk_pos;
	stream->chunk_pos +=
		convert(cs, stream->chunk + stream->chunk_pos, take, buf, &n);
	if (!cs->in_header && cs->lines_left == 0) {
		/* TOP has its lines: whole when nothing follows them */
		stream->limit_reached = true;
		stream->whole = stream->chunk_pos == stream->chunk_len &&
				stream->offset >= stream->file_size;
	}
	if (stream->eof || stream->limit_reached) {
		if (cs->prev != '\n') {
			buf[n++] = '\r';
			buf[n++] = '\n';
		}
		memcpy(buf + n, ".\r\n", 3);
		n += 3;
		stream->finished = true;
	}
	return (ssize_t)n;
}

bool shim_msg_stream_whole(const struct shim_msg_stream *stream)
{
	return stream->finished && stream->whole;
}

void shim_msg_stream_close(struct shim_msg_stream **_stream)
{
	struct shim_msg_stream *stream = *_stream;

	if (stream == NULL)
		return;
	*_stream = NULL;
	close(stream->fd);
	free(stream->name);
	free(stream);
}

enum mid_state { MID_NAME, MID_VALUE, MID_SKIP };

/* Finding the Message-ID in a header that arrives in pieces. */
struct mid_parser {
	enum mid_state state;
	char name[16];
	size_t name_len;
	bool line_start, found, done;
	char prev;
	size_t line_len;
	char *buf;
	size_t size, len;
};

static void mid_name_char(struct mid_parser *p, char c)
{
	if (c == ':') {
		p->state =
			p->name_len == 10 && strncasecmp(p->name, "message-id",
							 10) == 0
				? MID_VALUE
				: MID_SKIP;
	} else if (c == ' ' || c == '\t') {
		/* obsolete syntax: blanks before the colon */
	} else if (p->name_len < sizeof(p->name)) {
		p->name[p->name_len++] = c;
	} else {
		p->state = MID_SKIP;
	}
}

static void mid_char(struct mid_parser *p, char c)
{
	if (c == '\n') {
		if (p->line_len == 0 || (p->line_len == 1 && p->prev == '\r'))
			p->done = true;
		p->line_start = true;
		p->line_len = 0;
		p->prev = c;
		return;
	}
	if (p->line_start) {
		p->line_start = false;
		if (c != ' ' && c != '\t') {
			/* a new field: a Message-ID before it is complete */
			if (p->state == MID_VALUE) {
				p->found = true;
				p->done = true;
				return;
			}
			p->state = MID_NAME;
			p->name_len = 0;
		}
	}
	p->line_len++;
	p->prev = c;
	if (p->state == MID_NAME)
		mid_name_char(p, c);
	else if (p->state == MID_VALUE && c != '\r' &&
		 (p->len > 0 || (c != ' ' && c != '\t')) &&
		 p->len + 1 < p->size)
		p->buf[p->len++] = c;
}

int shim_maildir_message_id(struct shim_maildir *md, unsigned int idx,
			    char *buf, size_t size, char *error,
			    size_t error_size)
{
	struct mid_parser p;
	char *chunk;
	ssize_t n, i;
	int fd;

	if (size == 0) {
		shim_maildir_error(error, error_size,
				   "no room for a Message-ID");
		return -1;
	}
	memset(&p, 0, sizeof(p));
	p.line_start = true;
	p.state = MID_SKIP;
	p.buf = buf;
	p.size = size;
	chunk = malloc(SHIM_READ_CHUNK);
	if (chunk == NULL) {
		shim_maildir_error(error, error_size, "out of memory");
		return -1;
	}
	if ((fd = shim_maildir_msg_open(md, idx, error, error_size)) < 0) {
		free(chunk);
		return -1;
	}
	while (!p.done) {
		n = read(fd, chunk, SHIM_READ_CHUNK);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			shim_maildir_error(error, error_size,
					   "read(message %u of %s) failed: %s",
					   idx + 1, shim_maildir_path(md),
					   strerror(errno));
			break;
		}
		if (n == 0)
			p.done = true;
		for (i = 0; i < n && !p.done; i++)
			mid_char(&p, chunk[i]);
	}
	close(fd);
	free(chunk);
	if (!p.done)
		return -1;
	if (p.state == MID_VALUE)
		p.found = true;
	while (p.len > 0 && (buf[p.len - 1] == ' ' || buf[p.len - 1] == '\t'))
		p.len--;
	buf[p.len] = '\0';
	return p.found && p.len > 0 ? 1 : 0;
}
