#ifndef FUZZ_TREE_H
#define FUZZ_TREE_H

/* Removing a fuzz target's scratch directory tree (header-only: every
   target is one translation unit). */

#include <ftw.h>
#include <stdio.h>
#include <sys/stat.h>

static int fuzz_tree_remove_entry(const char *path, const struct stat *st,
				  int type, struct FTW *ftw)
{
	(void)st;
	(void)type;
	(void)ftw;
	return remove(path);
}

/* Remove dir and everything below it, without following links;
   errors are ignored (a scratch tree). */
static inline void fuzz_tree_remove(const char *dir)
{
	(void)nftw(dir, fuzz_tree_remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

#endif
