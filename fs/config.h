/* fs/config.h: named accounts in the config file
 * ($XDG_CONFIG_HOME/imapfs/config, else ~/.config/imapfs/config). One
 * group per account; its keys are the long options without the dashes,
 * applied through fs_options_set(), plus url, mountpoint and options (a
 * -o list for FUSE). */
#pragma once

#include <glib.h>

#include "fs/options.h"

/* What an account holds besides options: strings owned by the struct. */
typedef struct {
	char *url;
	char *mountpoint; /* absolute, "~/" expanded; NULL when not given */
	char *options;    /* a -o list, or NULL */
} FsConfigAccount;

/* The home directory: $HOME, unless another user owns it (as when
 * mount(8) runs a user's helper), else the password database's. Owned by
 * the function; never NULL. */
const char *fs_config_home_dir(void);

/* The default path (never NULL; g_free it). */
char *fs_config_default_path(void);

/* Load path (NULL: the default) and apply account name's options to
 * opts; fill *out. Returns 0, or -1 with error set to a message that
 * names the file, the line and the key. A file that others can read and
 * that holds a secret draws a warning on stderr. */
int fs_config_load_account(const char *path, const char *name, FsOptions *opts,
			   FsConfigAccount *out, GError **error);
void fs_config_account_clear(FsConfigAccount *acct);

/* Print every account of path (NULL: the default) on stdout with where it
 * is mounted now (from /proc/self/mountinfo). Returns 0 or -1 with error
 * set. */
int fs_config_print_accounts(const char *path, GError **error);

/* True when arg names an account rather than a URL (it has no scheme). */
gboolean fs_config_is_account_name(const char *arg);
