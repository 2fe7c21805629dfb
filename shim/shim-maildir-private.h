#ifndef SHIM_MAILDIR_PRIVATE_H
#define SHIM_MAILDIR_PRIVATE_H

/* Between the maildrop (shim-maildir.c) and its message streams
   (shim-maildir-stream.c); not for the host. */

#include "shim-maildir.h"

/* Open message idx's file for reading (following a rename by another
   client). Returns the descriptor, or -1 with error. */
int shim_maildir_msg_open(struct shim_maildir *md, unsigned int idx,
			  char *error, size_t error_size);

/* The RFC 1939 size of the file at path, by reading it once. Returns 1
   with *size_r, 0 when the file vanished, -1 with error. */
int shim_msg_size_read(const char *path, uint64_t *size_r, char *error,
		       size_t error_size);

/* snprintf() into error (nothing when error_size is 0). */
void shim_maildir_error(char *error, size_t error_size, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#endif
