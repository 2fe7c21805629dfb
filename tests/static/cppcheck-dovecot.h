/* Read by cppcheck before each file of plugin/dovecot (--include), and
   by nothing else. cppcheck 2.10's preprocessor expands the call to the
   function hash_table_iterate() inside Dovecot's macro of the same name
   again, fails, and then skips the whole file: the macro is replaced by
   one that calls a differently named declaration. The checks run on
   our code, not on these stand-ins. */
#include "lib.h"
#include "hash.h"

bool cppcheck_hash_table_iterate(struct hash_iterate_context *ctx,
				 void *key_r, void *value_r);
#undef hash_table_iterate
#define hash_table_iterate(ctx, table, key_r, value_r) \
	cppcheck_hash_table_iterate(ctx, key_r, value_r)
/* hash_table_lookup() casts through typeof(), on which cppcheck's AST
   breaks (also a reason to skip the file): no cast, as Dovecot does
   without HAVE_TYPEOF */
#undef HASH_VALUE_CAST
#define HASH_VALUE_CAST(table)
