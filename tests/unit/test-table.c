/* See test-table.h. */

#define _GNU_SOURCE /* nftw() */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <cmocka.h>

#include "test-table.h"

#include <errno.h>
#include <ftw.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <sys/stat.h>
#include <time.h>

int64_t test_mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int remove_entry(const char *path, const struct stat *st, int flag,
			struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

int test_remove_tree(const char *dir)
{
	if (nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS) < 0) {
		fprintf(stderr, "cannot remove %s\n", dir);
		return -1;
	}
	return 0;
}

int test_table_run(const char *group, CMUnitTestFunction func,
		   CMFixtureFunction teardown, const void *rows,
		   size_t row_size, size_t count)
{
	struct CMUnitTest *tests;
	const char *row;
	size_t i;
	int failed;

	tests = calloc(count, sizeof(*tests));
	if (tests == NULL) {
		fprintf(stderr, "%s: out of memory\n", group);
		return (int)count;
	}
	for (i = 0; i < count; i++) {
		row = (const char *)rows + i * row_size;
		tests[i].name = *(const char *const *)(const void *)row;
		tests[i].test_func = func;
		tests[i].initial_state = (void *)(uintptr_t)row;
		tests[i].teardown_func = teardown;
	}
	failed = _cmocka_run_group_tests(group, tests, count, NULL, NULL);
	free(tests);
	return failed;
}

unsigned int test_burners_start(pid_t *pids, unsigned int max)
{
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	unsigned int count = 0;
	pid_t pid;

	if (cpus < 1)
		cpus = 1;
	while (count < (unsigned int)cpus && count < max) {
		pid = fork();
		if (pid < 0) {
			fprintf(stderr, "fork: %s\n", strerror(errno));
			break;
		}
		if (pid == 0) {
			volatile unsigned long spin = 0;

			for (;;)
				spin++;
		}
		pids[count++] = pid;
	}
	return count;
}

void test_burners_stop(pid_t *pids, unsigned int *count)
{
	unsigned int i;

	for (i = 0; i < *count; i++) {
		(void)kill(pids[i], SIGKILL);
		(void)waitpid(pids[i], NULL, 0);
	}
	*count = 0;
}
