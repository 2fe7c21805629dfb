/* See test-table.h. */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <cmocka.h>

#include "test-table.h"

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
