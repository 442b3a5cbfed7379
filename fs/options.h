/* fs/options.h: the command line and -o options (for /etc/fstab). Nothing
 * here touches the network or FUSE sessions; the password sources are in
 * fs/password.h. */
#pragma once

#include <fuse_lowlevel.h>
#include <glib.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "imap/url.h"

/* What a message looks like in the mount (--layout). */
typedef enum {
	FS_LAYOUT_EML = 0, /* one .eml file, the raw bytes */
	FS_LAYOUT_PARTS,   /* a directory of decoded parts (fs/parts.c) */
	FS_LAYOUT_MAILDIR, /* cur/ new/ tmp/ in every folder (fs/maildir.c) */
} FsLayoutKind;

typedef struct {
	char *url;        /* as given, never contains a password */
	ImapUrl server;   /* the URL parsed: TLS mode, user, host, port */
	char *mountpoint; /* absolute path */

	char *password_command; /* run with /bin/sh -c; first line of stdout */
	char *password_file;    /* first line of the file */
	char *cafile;
	char *cache_dir;      /* resolved: --cache-dir or $XDG_CACHE_HOME/imapfs
				 or ~/.cache/imapfs */
	unsigned connections; /* pool size, 1..64, default 4 */
	unsigned timeout;    /* seconds for one network operation, default 10 */
	uint64_t cache_size; /* bytes of bodies kept; 0 = no bound */
	unsigned poll_interval; /* seconds between checks for new
				   mail, 5..86400, default 60 */
	bool insecure;          /* skip certificate and host name checks */
	bool xattr;             /* offer user.imapfs.* extended attributes */
	char *name_format;      /* --name-format, NULL for the default */
	unsigned umask;         /* -o umask=NNN, default 077: owner only */
	uid_t uid;              /* -o uid=: owner of every file, default ours */
	gid_t gid;              /* -o gid=: group, default ours */
	bool foreground;        /* -f */
	bool debug;             /* -d: debug log on stderr, implies -f */
	char *disable_extension; /* IMAP extensions never to use, separated
				    by spaces, ':' or '+'; NULL: none */
	int prefetch;            /* FS_OPT_PREFETCH_*, default auto */
	char *account; /* "imapfs NAME": the config file's account, or NULL */
	/* OAuth 2.0 sign-in (fs/token.c): --auth (an ImapAuthMech), the
	 * token sources, --authorize (run the device grant, do not mount). */
	unsigned auth;
	char *token_command;
	char *provider; /* "google" or "microsoft": endpoints and scope */
	char *oauth_token_url;
	char *oauth_device_url;
	char *oauth_client_id;
	char *oauth_client_secret; /* config file only: never from argv */
	char *oauth_client_secret_command;
	char *oauth_scope;
	char *oauth_refresh_token_command;
	bool authorize;
	bool offline;  /* --offline: never connect, serve the cache */
	bool nonempty; /* -o nonempty: mount over a non-empty directory */
	bool namespace_server;    /* --namespace=server: no prefix stripping */
	unsigned status_interval; /* seconds between STATUS polls without
				     NOTIFY, 0..3600 (0: off), default 3 */
	FsLayoutKind layout;      /* --layout, default eml */
	unsigned list_ahead; /* --list-ahead: folder levels listed ahead of a
				readdir, 0..16 (0: off), default 3 */

	/* Arguments for fuse_session_new(): the user's remaining -o options
	 * plus ours (ro, noatime, default_permissions, subtype=imapfs,
	 * fsname=URL). */
	struct fuse_args fuse_args;
} FsOptions;

enum {
	FS_OPT_PREFETCH_AUTO = 0, /* off on metered providers, else ahead */
	FS_OPT_PREFETCH_OFF,
	FS_OPT_PREFETCH_AHEAD,
};

enum {
	FS_OPTIONS_RUN = 0,     /* go on and mount */
	FS_OPTIONS_EXIT_OK = 1, /* --help or --version was printed */
};

/* Parse argv. Returns FS_OPTIONS_RUN, FS_OPTIONS_EXIT_OK, or -1 with error
 * set (a one-line message for the user). */
int fs_options_parse(int argc, char **argv, FsOptions *opts, GError **error);
/* Free everything opts owns and zero it; harmless on a cleared struct. */
void fs_options_clear(FsOptions *opts);
/* Set error (G_OPTION_ERROR_BAD_VALUE) to the formatted message: the one
 * kind of error the command line, the options and the password sources
 * report. */
void fs_options_error(GError **error, const char *fmt, ...) G_GNUC_PRINTF(2, 3);

/* One option by its long name without the dashes ('_' or '-'), as the
 * config file gives it; a flag takes "true" or "false". Returns 0,
 * -ENOENT when no option has that name, or -EINVAL with error set. */
int fs_options_set(FsOptions *opts, const char *name, const char *value,
		   GError **error);
/* The long name of option i (from 0), or NULL past the last one. */
const char *fs_options_name(unsigned i);
