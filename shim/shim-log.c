/* pop3-retentiond's log (see the header). */

#include "shim-log.h"

#include <stdarg.h>
#include <stdio.h>
#include <syslog.h>

static enum shim_log_target log_target = SHIM_LOG_STDERR;
static bool log_debug;

void shim_log_open(enum shim_log_target target, bool debug)
{
	if (log_target == SHIM_LOG_SYSLOG && target != SHIM_LOG_SYSLOG)
		closelog();
	if (target == SHIM_LOG_SYSLOG && log_target != SHIM_LOG_SYSLOG)
		openlog("pop3-retentiond", LOG_PID | LOG_NDELAY, LOG_MAIL);
	log_target = target;
	log_debug = debug;
}

void shim_log_close(void)
{
	if (log_target == SHIM_LOG_SYSLOG)
		closelog();
	log_target = SHIM_LOG_STDERR;
}

static const char *const level_names[] = {
	[SHIM_LOG_DEBUG] = "Debug",
	[SHIM_LOG_INFO] = "Info",
	[SHIM_LOG_WARNING] = "Warning",
	[SHIM_LOG_ERROR] = "Error",
};

static const int level_priorities[] = {
	[SHIM_LOG_DEBUG] = LOG_DEBUG,
	[SHIM_LOG_INFO] = LOG_INFO,
	[SHIM_LOG_WARNING] = LOG_WARNING,
	[SHIM_LOG_ERROR] = LOG_ERR,
};

void shim_log(enum shim_log_level level, const char *fmt, ...)
{
	char line[2048];
	va_list args;

	if (level == SHIM_LOG_DEBUG && !log_debug)
		return;
	va_start(args, fmt);
	(void)vsnprintf(line, sizeof(line), fmt, args);
	va_end(args);
	if (log_target == SHIM_LOG_SYSLOG) {
		syslog(level_priorities[level], "%s", line);
		return;
	}
	fprintf(stderr, "pop3-retentiond: %s: %s\n", level_names[level], line);
	fflush(stderr);
}
