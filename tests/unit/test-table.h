#ifndef TEST_TABLE_H
#define TEST_TABLE_H

/* Table-driven cmocka tests: one cmocka test per row of a static const
   case array whose row structs start with their name (const char *).
   Include after <cmocka.h>. */

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifndef N_ELEMENTS
#  define N_ELEMENTS(arr) (sizeof(arr) / sizeof((arr)[0]))
#endif

/* Run func once per row as the group `group`; each test's state is a
   pointer to its row; teardown (may be NULL) runs after each row, failed
   or not. Returns the number of failed rows. */
int test_table_run(const char *group, CMUnitTestFunction func,
		   CMFixtureFunction teardown, const void *rows,
		   size_t row_size, size_t count);

/* CLOCK_MONOTONIC in milliseconds, for the tests' own deadlines. */
int64_t test_mono_ms(void);

/* Remove dir and everything below it (not following symbolic links).
   Returns 0, or -1 (reported on stderr). */
int test_remove_tree(const char *dir);

/* Start one busy-looping child process per online CPU (at most max),
   other work that saturates the machine; their pids go to pids. Returns
   how many run (fewer if fork() failed, reported on stderr). */
unsigned int test_burners_start(pid_t *pids, unsigned int max);
/* Kill and reap them; *count becomes 0. */
void test_burners_stop(pid_t *pids, unsigned int *count);

#define RUN_TABLE(group, func, rows) \
	test_table_run(group, func, NULL, rows, sizeof((rows)[0]), \
		       N_ELEMENTS(rows))
#define RUN_TABLE_TEARDOWN(group, func, teardown, rows) \
	test_table_run(group, func, teardown, rows, sizeof((rows)[0]), \
		       N_ELEMENTS(rows))

#endif
