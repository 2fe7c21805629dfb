/* Dovecot 2.4 settings module: glue only. Dovecot's config process loads
   every module in $(moduledir)/settings and adds the infos it exports as
   <module>_set_infos, so that the pop3_retention_* keys are known to
   config, doveconf and every process that asks for them. */

#include "lib.h"
#include "pop3-retention-setting-defs.h"

extern const char *pop3_retention_settings_version;
extern const struct setting_parser_info *pop3_retention_settings_set_infos[];

const char *pop3_retention_settings_version = DOVECOT_ABI_VERSION;

const struct setting_parser_info *pop3_retention_settings_set_infos[] = {
	&pop3_retention_setting_parser_info,
	NULL
};
