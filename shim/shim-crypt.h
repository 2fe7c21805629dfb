#ifndef SHIM_CRYPT_H
#define SHIM_CRYPT_H

/* Password checks off the event loop: a few worker threads run
   shim_passwd_verify() and hand each result back to the loop's thread,
   where the job's callback is called. The only threads of
   pop3-retentiond; they touch nothing but their job. */

#include <stddef.h>

struct event_base;
struct shim_crypt_pool;
struct shim_crypt_job;

/* result: as shim_passwd_verify() (1 match, 0 mismatch, -1 error with
   error text, else NULL). Called from the event loop. */
typedef void shim_crypt_done_t(int result, const char *error,
			       void *context);

/* Start workers threads (1..16) whose results base's loop receives.
   Returns NULL with error. */
struct shim_crypt_pool *shim_crypt_pool_create(struct event_base *base,
					       unsigned int workers,
					       char *error,
					       size_t error_size);
/* Cancel what is queued, wait for the workers, free, NULL the pointer. */
void shim_crypt_pool_destroy(struct shim_crypt_pool **pool);

/* Queue a check of password against stored. Both are copied; the copy
   of the password is wiped once checked. done(context) is called
   exactly once, from the loop, unless the job is cancelled first.
   Returns the job, or NULL when SHIM_CRYPT_QUEUE_MAX jobs wait (the
   caller answers -ERR [SYS/TEMP]). */
struct shim_crypt_job *shim_crypt_pool_verify(struct shim_crypt_pool *pool,
					      const char *stored,
					      const char *password,
					      shim_crypt_done_t *done,
					      void *context);
/* The caller is going away: done is never called for job, which is
   freed by the pool. */
void shim_crypt_job_cancel(struct shim_crypt_job *job);

#endif
