#ifndef POP3_RETENTION_CAPA_H
#define POP3_RETENTION_CAPA_H

/* Post-login RFC 2449 EXPIRE: pop3 has no capability setting or hook, so
   the CAPA reply is rewritten on its way out. */

struct client;

/* Longest EXPIRE argument accepted ("NEVER", a day count). */
#define POP3_RETENTION_CAPA_VALUE_MAX 32

/* Wrap client->output in a filter that adds "EXPIRE <expire_value>" to
   pop3's post-login CAPA reply and passes every other byte through
   unchanged. Call it from the pop3 client-created hook, before the
   first reply is sent. expire_value must be 1..POP3_RETENTION_CAPA_VALUE_MAX
   printable ASCII characters (e.g. "30", "0", "NEVER"); it is copied. The
   filter replaces client->output, holds the only extra reference to the
   original stream and is freed with client->output by pop3 itself. */
void pop3_retention_capa_install(struct client *client,
				 const char *expire_value);

/* While a message streams (RETR, TOP), let pop3 write straight to the
   filter's parent: a message body can never be the CAPA reply, and pop3
   writes a body in pieces of a line or less, so the extra stream layer
   would cost on every piece. Returns the filter if client->output was
   switched (pass it to _bypass_end() before the next command's reply),
   NULL if the filter is not installed or still holds bytes of its own.
   The filter keeps its reference to the parent throughout. */
struct ostream *pop3_retention_capa_bypass_begin(struct client *client);
/* Put the filter returned by _bypass_begin() back as client->output
   (unless pop3 replaced client->output meanwhile). */
void pop3_retention_capa_bypass_end(struct client *client,
				    struct ostream *filter);

#endif
