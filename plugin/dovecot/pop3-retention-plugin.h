#ifndef POP3_RETENTION_PLUGIN_H
#define POP3_RETENTION_PLUGIN_H

struct module;
struct mailbox;
struct mail;
struct client;

extern const char *pop3_retention_plugin_version;

void pop3_retention_plugin_init(struct module *module);
void pop3_retention_plugin_deinit(void);

/* pop3's client list, resolved with dlsym() at init (the plugin must not
   link to pop3's data symbols: imap/lmtp could not load it at all). */
struct client *pop3_retention_pop3_clients(void);

/* pop3-retention-storage.c */
void pop3_retention_storage_mailbox_allocated(struct mailbox *box);
void pop3_retention_storage_mail_allocated(struct mail *mail);

#endif
