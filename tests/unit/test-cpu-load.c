/* CPU saturation by others' work (cpu-load): /proc/stat parsing, the
   decision's thresholds and hysteresis on synthetic samples, and real
   samples of this machine with every CPU busy-looping in child
   processes (others' work) and in threads of this process (ours, which
   must never count). One cmocka test per table row. */

#include "pop3-retention-config.h"
#include "cpu-load.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "test-table.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void __attribute__((format(printf, 3, 4)))
case_fail(size_t idx, const char *name, const char *fmt, ...)
{
	char msg[512];
	va_list args;

	va_start(args, fmt);
	vsnprintf(msg, sizeof(msg), fmt, args);
	va_end(args);
	fail_msg("case %zu (%s): %s", idx, name, msg);
}

/* ---- parsing ---- */

struct parse_case {
	const char *name;
	const char *text;
	int ret;
	uint64_t total, idle;
};

static const struct parse_case parse_cases[] = {
	{ "kernel 6 line: 8 fields summed, guest not added",
	  "cpu  100 2 30 400 5 6 7 8 50 1\ncpu0 50 1 15 200 2 3 3 4 25 0\n",
	  0, 558, 405 },
	{ "aggregate line after others",
	  "intr 1 2\ncpu  10 0 10 80 0 0 0 0\n", 0, 100, 80 },
	{ "per-CPU lines only: no aggregate",
	  "cpu0 10 0 10 80\ncpu1 1 1 1 1\n", -1, 0, 0 },
	{ "old kernel: 4 fields (no iowait)", "cpu  1 2 3 4\n", 0, 10, 4 },
	{ "too few fields", "cpu  1 2 3\n", -1, 0, 0 },
	{ "garbage", "hello\n", -1, 0, 0 },
	{ "empty", "", -1, 0, 0 },
	{ "number out of range", "cpu  99999999999999999999999 0 0 0\n", -1,
	  0, 0 },
};

static void test_parse(void **state)
{
	const struct parse_case *c = *state;
	size_t idx = (size_t)(c - parse_cases);
	uint64_t total = 7, idle = 7;
	int ret;

	ret = cpu_load_parse_stat(c->text, &total, &idle);
	if (ret != c->ret)
		case_fail(idx, c->name, "returned %d, expected %d", ret,
			  c->ret);
	if (ret == 0 && (total != c->total || idle != c->idle))
		case_fail(idx, c->name, "total %" PRIu64 " idle %" PRIu64
			  ", expected %" PRIu64 " and %" PRIu64, total, idle,
			  c->total, c->idle);
}

/* ---- the decision ---- */

/* one 100-tick interval at 100 ticks/s on 2 CPUs... shapes in percent of
   the interval's total ticks */
struct busy_case {
	const char *name;
	unsigned int idle_pct;
	unsigned int own_pct;
	bool was_busy;
	bool empty;		/* no tick passed */
	bool busy;
};

static const struct busy_case busy_cases[] = {
	{ "saturated by others", 0, 5, false, false, true },
	{ "saturated, 40 % ours: others 60 %", 0, 40, false, false, true },
	{ "saturated by ourselves (drain)", 0, 80, false, false, false },
	{ "half ours, half others: not others' saturation", 5, 50, false,
	  false, false },
	{ "9 % idle", 9, 0, false, false, true },
	{ "10 % idle is not busy", 10, 0, false, false, false },
	{ "hysteresis: 15 % idle stays busy", 15, 0, true, false, true },
	{ "hysteresis: 15 % idle does not become busy", 15, 0, false, false,
	  false },
	{ "20 % idle calms down", 20, 0, true, false, false },
	{ "busy, then ours grows to 60 %: others 40 % calm", 0, 60, true,
	  false, false },
	{ "busy, ours 55 %: others 45 % stay busy", 0, 55, true, false,
	  true },
	{ "idle machine", 100, 0, false, false, false },
	{ "no tick passed keeps busy", 0, 0, true, true, true },
	{ "no tick passed keeps calm", 0, 0, false, true, false },
	{ "ours above the counted busy time (tick sampling)", 50, 90, false,
	  false, false },
};

static void test_busy(void **state)
{
	const struct busy_case *c = *state;
	size_t idx = (size_t)(c - busy_cases);
	struct cpu_load_sample a, b;
	bool busy;

	memset(&a, 0, sizeof(a));
	a.total_ticks = 100000;
	a.idle_ticks = 50000;
	a.own_ns = 5000000000ULL;
	a.ticks_per_sec = 100;
	b = a;
	if (!c->empty) {
		/* 100 ticks = 1 s of CPU time */
		b.total_ticks += 100;
		b.idle_ticks += c->idle_pct;
		b.own_ns += (uint64_t)c->own_pct * 10000000ULL;
	}
	busy = cpu_load_busy(&a, &b, c->was_busy);
	if (busy != c->busy)
		case_fail(idx, c->name, "busy %d, expected %d", busy,
			  c->busy);
}

/* ---- real samples ---- */

enum real_load {
	/* nothing added */
	REAL_NONE = 0,
	/* one busy-looping child per CPU */
	REAL_OTHERS,
	/* one busy-looping thread of this process per CPU */
	REAL_OURS,
};

struct real_case {
	const char *name;
	enum real_load load;
	bool use_fd;
	/* REAL_OTHERS must become busy; REAL_OURS must never */
};

static const struct real_case real_cases[] = {
	{ "a sample of this machine (fd kept open)", REAL_NONE, true },
	{ "a sample of this machine (opened each time)", REAL_NONE, false },
	{ "every CPU busy in child processes: busy", REAL_OTHERS, true },
	{ "this process busy: never counted as others", REAL_OURS, true },
};

static pid_t burners[256];
static unsigned int burner_count;

static void burners_stop(void)
{
	test_burners_stop(burners, &burner_count);
}

static int real_teardown(void **state)
{
	(void)state;
	burners_stop();
	return 0;
}

static void spin_ms(int64_t ms)
{
	int64_t end = test_mono_ms() + ms;
	volatile unsigned long spin = 0;

	while (test_mono_ms() < end)
		spin++;
}

static int spinners_stop;

static void *spinner_main(void *context)
{
	volatile unsigned long spin = 0;

	(void)context;
	while (!__atomic_load_n(&spinners_stop, __ATOMIC_RELAXED))
		spin++;
	return NULL;
}

static void test_real(void **state)
{
	const struct real_case *c = *state;
	size_t idx = (size_t)(c - real_cases);
	struct cpu_load_sample prev, cur;
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	bool busy = false, ever_busy = false;
	pthread_t spinners[64];
	unsigned int i, spinner_count = 0;
	int fd = -1;

	if (c->use_fd) {
		fd = open("/proc/stat", O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			case_fail(idx, c->name, "open(/proc/stat): %s",
				  strerror(errno));
	}
	if (c->load == REAL_OTHERS) {
		burner_count = test_burners_start(burners,
						  N_ELEMENTS(burners));
		if (burner_count == 0)
			case_fail(idx, c->name, "no busy-looping child");
	}
	if (c->load == REAL_OURS) {
		/* the main thread spins too, see below */
		__atomic_store_n(&spinners_stop, 0, __ATOMIC_RELAXED);
		while (spinner_count + 1 < (unsigned int)cpus &&
		       spinner_count < N_ELEMENTS(spinners)) {
			if (pthread_create(&spinners[spinner_count], NULL,
					   spinner_main, NULL) != 0)
				break;
			spinner_count++;
		}
	}
	if (cpu_load_sample(fd, &prev) < 0)
		case_fail(idx, c->name, "sample: %s", strerror(errno));
	if (prev.total_ticks == 0 || prev.idle_ticks > prev.total_ticks ||
	    prev.ticks_per_sec == 0)
		case_fail(idx, c->name, "implausible sample: total %" PRIu64
			  " idle %" PRIu64, prev.total_ticks, prev.idle_ticks);
	/* ten intervals; REAL_OTHERS must be busy in the later ones */
	for (i = 0; i < 10; i++) {
		if (c->load == REAL_OURS)
			spin_ms(CPU_LOAD_SAMPLE_MSECS);
		else
			usleep(CPU_LOAD_SAMPLE_MSECS * 1000);
		if (cpu_load_sample(fd, &cur) < 0)
			case_fail(idx, c->name, "sample: %s",
				  strerror(errno));
		if (cur.total_ticks < prev.total_ticks ||
		    cur.own_ns < prev.own_ns)
			case_fail(idx, c->name, "counters went backwards");
		busy = cpu_load_busy(&prev, &cur, busy);
		ever_busy = ever_busy || busy;
		prev = cur;
	}
	__atomic_store_n(&spinners_stop, 1, __ATOMIC_RELAXED);
	for (i = 0; i < spinner_count; i++)
		(void)pthread_join(spinners[i], NULL);
	if (c->load == REAL_OURS && ever_busy)
		case_fail(idx, c->name, "our own work counted as others'");
	if (c->load == REAL_OTHERS && !busy)
		case_fail(idx, c->name, "every CPU busy, not detected");
	if (c->load == REAL_OURS && prev.own_ns == 0)
		case_fail(idx, c->name, "no CPU time of our own");
	burners_stop();
	if (fd >= 0)
		(void)close(fd);
}

int main(void)
{
	int failed = 0;

	failed += RUN_TABLE("cpu_load_parse_stat", test_parse, parse_cases);
	failed += RUN_TABLE("cpu_load_busy", test_busy, busy_cases);
	failed += RUN_TABLE_TEARDOWN("cpu_load_sample", test_real,
				     real_teardown, real_cases);
	return failed == 0 ? 0 : 1;
}
