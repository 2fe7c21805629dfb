#ifndef SHIM_MAILDIR_PRIVATE_H
#define SHIM_MAILDIR_PRIVATE_H

/* Between the maildrop (shim-maildir.c), reading its messages
   (shim-maildir-read.c) and moving them (shim-maildir-move.c); not for
   the host. */

#include "shim-maildir.h"

/* Open message idx's file for reading (following a rename by another
   client). Returns the descriptor, or -1 with error. */
int shim_maildir_msg_open(struct shim_maildir *md, unsigned int idx,
			  char *error, size_t error_size);

/* The RFC 1939 size of the file at path, by reading it once. Returns 1
   with *size_r, 0 when the file vanished, -1 with error. */
int shim_msg_size_read(const char *path, uint64_t *size_r, char *error,
		       size_t error_size);

/* An operation on a message's file: 0, or -1 with errno. */
typedef int shim_maildir_op_t(const char *path, void *context);

/* Run op on message idx's file in cur/, once more under its current
   name when another client renamed it (ENOENT). removes: on success the
   message is gone from here (expunged, moved) and refused later.
   Returns 0, or -1 with error naming what and the path. */
int shim_maildir_msg_op(struct shim_maildir *md, unsigned int idx,
			shim_maildir_op_t *op, void *context, const char *what,
			bool removes, char *error, size_t error_size);

/* Create new/, cur/ and tmp/ in dir (mode 0700), and dir itself when
   self; existing ones are fine. Returns 0, or -1 with error. */
int shim_maildir_mkdirs(const char *dir, bool self, char *error,
			size_t error_size);

/* snprintf() a path; -1 with error when it does not fit. */
int shim_maildir_path_fmt(char *path, size_t size, char *error,
			  size_t error_size, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));

/* snprintf() into error (nothing when error_size is 0). */
void shim_maildir_error(char *error, size_t error_size, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#endif
