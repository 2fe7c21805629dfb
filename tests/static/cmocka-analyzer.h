/* Included first into each unit test by tests/static/run, for gcc's
   analyzer only. cmocka 1.1 ends a failed test with a longjmp from
   _fail(), but does not declare it noreturn: without this the analyzer
   follows every path past a failed fail_msg() or assertion and reports
   the NULL dereferences the assertion has just ruled out. */
#ifndef _GNU_SOURCE
#  define _GNU_SOURCE
#endif
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

void _fail(const char * const file, const int line)
	__attribute__((noreturn));

/* the one assertion whose failure the tests' next line relies on */
#undef assert_non_null
#define assert_non_null(c) \
	do { if ((c) == NULL) _fail(__FILE__, __LINE__); } while (0)
