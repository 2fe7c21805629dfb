#ifndef SHIM_LOG_H
#define SHIM_LOG_H

/* pop3-retentiond's log: stderr (one line each, for systemd's journal)
   or syslog (facility mail). */

#include "shim-config.h"

enum shim_log_level {
	SHIM_LOG_DEBUG,
	SHIM_LOG_INFO,
	SHIM_LOG_WARNING,
	SHIM_LOG_ERROR,
};

/* Where lines go from now on (stderr until called). */
void shim_log_open(enum shim_log_target target, bool debug);
void shim_log_close(void);

void shim_log(enum shim_log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#define shim_error(...) shim_log(SHIM_LOG_ERROR, __VA_ARGS__)
#define shim_warning(...) shim_log(SHIM_LOG_WARNING, __VA_ARGS__)
#define shim_info(...) shim_log(SHIM_LOG_INFO, __VA_ARGS__)
#define shim_debug(...) shim_log(SHIM_LOG_DEBUG, __VA_ARGS__)

#endif
