/* Machine CPU saturation by others' work (see the header). */

#include "pop3-retention-config.h"
#include "cpu-load.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* user nice system idle iowait irq softirq steal */
#define STAT_FIELDS 8
/* the "cpu " line comes first; a few hundred bytes are plenty */
#define STAT_READ_MAX 512

int cpu_load_parse_stat(const char *text, uint64_t *total_r,
			uint64_t *idle_r)
{
	uint64_t v[STAT_FIELDS] = { 0 }, total = 0;
	const char *p = text;
	char *end;
	unsigned int i, n = 0;

	/* the aggregate line is "cpu" and blanks; "cpu0" are per CPU */
	while (strncmp(p, "cpu ", 4) != 0) {
		p = strchr(p, '\n');
		if (p == NULL)
			return -1;
		p++;
	}
	p += 3;
	for (i = 0; i < STAT_FIELDS; i++) {
		while (*p == ' ')
			p++;
		if (*p < '0' || *p > '9')
			break;
		errno = 0;
		v[i] = strtoull(p, &end, 10);
		if (errno != 0 || end == p)
			return -1;
		p = end;
		n++;
	}
	if (n < 4)
		return -1;
	for (i = 0; i < n; i++)
		total += v[i];
	*total_r = total;
	*idle_r = v[3] + v[4];
	return 0;
}

int cpu_load_sample(int fd, struct cpu_load_sample *sample_r)
{
	char buf[STAT_READ_MAX + 1];
	struct timespec ts;
	ssize_t ret;
	long hz;
	int own_fd = -1, saved;

	if (fd < 0) {
		own_fd = open("/proc/stat", O_RDONLY | O_CLOEXEC);
		if (own_fd < 0)
			return -1;
		fd = own_fd;
	}
	ret = pread(fd, buf, STAT_READ_MAX, 0);
	saved = errno;
	if (own_fd >= 0)
		(void)close(own_fd);
	if (ret < 0) {
		errno = saved;
		return -1;
	}
	buf[ret] = '\0';
	if (cpu_load_parse_stat(buf, &sample_r->total_ticks,
				&sample_r->idle_ticks) < 0) {
		errno = EINVAL;
		return -1;
	}
	if (clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts) < 0)
		return -1;
	sample_r->own_ns = (uint64_t)ts.tv_sec * 1000000000ULL +
		(uint64_t)ts.tv_nsec;
	hz = sysconf(_SC_CLK_TCK);
	sample_r->ticks_per_sec = hz > 0 ? (unsigned long)hz : 100;
	return 0;
}

bool cpu_load_busy(const struct cpu_load_sample *prev,
		   const struct cpu_load_sample *cur, bool was_busy)
{
	uint64_t total, idle, own, busy, others;

	if (cur->total_ticks <= prev->total_ticks ||
	    cur->idle_ticks < prev->idle_ticks)
		return was_busy;
	total = cur->total_ticks - prev->total_ticks;
	idle = cur->idle_ticks - prev->idle_ticks;
	if (idle > total)
		idle = total;
	busy = total - idle;
	own = cur->own_ns > prev->own_ns ?
		(cur->own_ns - prev->own_ns) * cur->ticks_per_sec /
		1000000000ULL : 0;
	/* tick accounting is sampled: ours may exceed what was counted */
	others = own < busy ? busy - own : 0;
	if (was_busy) {
		return idle * 100 < total * CPU_LOAD_CALM_IDLE_PCT &&
			others * 100 > total * CPU_LOAD_CALM_OTHERS_PCT;
	}
	return idle * 100 < total * CPU_LOAD_BUSY_IDLE_PCT &&
		others * 100 > total * CPU_LOAD_BUSY_OTHERS_PCT;
}
