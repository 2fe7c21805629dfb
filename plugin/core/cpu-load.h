#ifndef CPU_LOAD_H
#define CPU_LOAD_H

/* Is this machine's CPU saturated by work other than ours?

   Webhook delivery must not slow POP3. Niceness ranks the delivery
   threads below the mail processes only within one scheduling group
   (with autogroup or cgroups, the other groups still share the CPUs
   fairly with them), and the receiver's own CPU, when it runs here, is
   not ours to rank at all. So delivery also defers itself while the
   CPUs are busy with other work: the webhook runner samples this every
   CPU_LOAD_SAMPLE_MSECS.

   A sample is the machine's CPU time from /proc/stat (all CPUs) and this
   process's own CPU time (CLOCK_PROCESS_CPUTIME_ID). Between two samples:
     idle   = (idle + iowait) / total
     others = (total - idle - ours) / total
   The machine counts as busy from the interval with idle below
   CPU_LOAD_BUSY_IDLE_PCT while others use more than
   CPU_LOAD_BUSY_OTHERS_PCT (so that our own delivery, or a receiver on
   this host that only our delivery keeps busy, never defers itself),
   and stays busy until idle reaches CPU_LOAD_CALM_IDLE_PCT or others
   drop to CPU_LOAD_CALM_OTHERS_PCT (hysteresis: no flapping at the
   edge). Steal time counts as busy: the CPU was not available.

   Host-neutral: no event loop; thread-safe as long as each caller keeps
   its own samples. */

#include <stdbool.h>
#include <stdint.h>

#define CPU_LOAD_SAMPLE_MSECS 100
#define CPU_LOAD_BUSY_IDLE_PCT 10
#define CPU_LOAD_BUSY_OTHERS_PCT 50
#define CPU_LOAD_CALM_IDLE_PCT 20
#define CPU_LOAD_CALM_OTHERS_PCT 40

struct cpu_load_sample {
	/* /proc/stat's "cpu" line, clock ticks (USER_HZ) */
	uint64_t total_ticks;
	uint64_t idle_ticks;
	/* this process, all threads */
	uint64_t own_ns;
	/* sysconf(_SC_CLK_TCK) */
	unsigned long ticks_per_sec;
};

/* Parse the aggregate "cpu " line of /proc/stat's text into total and
   idle ticks (user nice system idle iowait irq softirq steal; guest time
   is already in user and nice). Returns 0, or -1 if there is no such
   line or it has fewer than 4 numbers. */
int cpu_load_parse_stat(const char *text, uint64_t *total_r,
			uint64_t *idle_r);

/* Take a sample. fd is an open /proc/stat (re-read from offset 0 each
   time; -1: opened and closed here). Returns 0, or -1 with errno. */
int cpu_load_sample(int fd, struct cpu_load_sample *sample_r);

/* Whether the machine is busy in the interval from prev to cur, given
   whether it was in the interval before. An empty interval (no tick
   passed) keeps the previous answer. */
bool cpu_load_busy(const struct cpu_load_sample *prev,
		   const struct cpu_load_sample *cur, bool was_busy);

#endif
