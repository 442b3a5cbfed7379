/* fs/options.c: the command line and the -o mount options (for /etc/fstab).
 *
 * FsOptions owns every string in it and its fuse_args; fs_options_clear()
 * frees them and may be called again on a cleared struct. Parsing keeps no
 * global state and reads no password: the URL is parsed by imap/url.c, the
 * password sources live in fs/password.c. A password never goes into
 * fuse_args, and an option's value is never echoed in a message about an
 * unknown option (it may be a secret).
 */
#ifndef FUSE_USE_VERSION
#define FUSE_USE_VERSION 312
#endif
#ifndef IMAPFS_VERSION
#define IMAPFS_VERSION "0.0.0"
#endif

#include "fs/options.h"
#include "fs/config.h"
#include "fs/name-format.h"
#include "fs/options-help.h"

#include <errno.h>
#include <fuse_opt.h>
#include <grp.h>
#include <pwd.h>
#include <openssl/crypto.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum opt_id {
	OPT_PASSWORD_COMMAND,
	OPT_PASSWORD_FILE,
	OPT_CAFILE,
	OPT_CACHE_DIR,
	OPT_CONNECTIONS,
	OPT_TIMEOUT,
	OPT_INSECURE,
	OPT_CACHE_SIZE,
	OPT_POLL_INTERVAL,
	OPT_XATTR,
	OPT_UMASK,
	OPT_UID,
	OPT_GID,
	OPT_AUTH,
	OPT_TOKEN_COMMAND,
	OPT_PROVIDER,
	OPT_OAUTH_TOKEN_URL,
	OPT_OAUTH_DEVICE_URL,
	OPT_OAUTH_CLIENT_ID,
	OPT_OAUTH_CLIENT_SECRET,
	OPT_OAUTH_CLIENT_SECRET_COMMAND,
	OPT_OAUTH_SCOPE,
	OPT_OAUTH_REFRESH_TOKEN_COMMAND,
	OPT_OFFLINE,
	OPT_NONEMPTY,
	OPT_NAME_FORMAT,
	OPT_NAMESPACE,
	OPT_STATUS_INTERVAL,
	OPT_DISABLE_EXTENSION,
	OPT_PREFETCH,
	OPT_LAYOUT,
	OPT_LIST_AHEAD,
};

struct opt_spec {
	const char *name; /* long name, with '-' */
	enum opt_id id;
	bool takes_value;
	bool secret; /* never from argv (ps shows it): the config file only */
};

static const struct opt_spec opt_specs[] = {
	{ "password-command", OPT_PASSWORD_COMMAND, true },
	{ "password-file", OPT_PASSWORD_FILE, true },
	{ "cafile", OPT_CAFILE, true },
	{ "cache-dir", OPT_CACHE_DIR, true },
	{ "connections", OPT_CONNECTIONS, true },
	{ "timeout", OPT_TIMEOUT, true },
	{ "insecure", OPT_INSECURE, false },
	{ "cache-size", OPT_CACHE_SIZE, true },
	{ "poll-interval", OPT_POLL_INTERVAL, true },
	{ "xattr", OPT_XATTR, false },
	{ "umask", OPT_UMASK, true },
	{ "uid", OPT_UID, true },
	{ "gid", OPT_GID, true },
	{ "auth", OPT_AUTH, true },
	{ "token-command", OPT_TOKEN_COMMAND, true },
	{ "provider", OPT_PROVIDER, true },
	{ "oauth-token-url", OPT_OAUTH_TOKEN_URL, true },
	{ "oauth-device-url", OPT_OAUTH_DEVICE_URL, true },
	{ "oauth-client-id", OPT_OAUTH_CLIENT_ID, true },
	{ "oauth-client-secret", OPT_OAUTH_CLIENT_SECRET, true, true },
	{ "oauth-client-secret-command", OPT_OAUTH_CLIENT_SECRET_COMMAND,
	  true },
	{ "oauth-scope", OPT_OAUTH_SCOPE, true },
	{ "oauth-refresh-token-command", OPT_OAUTH_REFRESH_TOKEN_COMMAND,
	  true },
	{ "offline", OPT_OFFLINE, false },
	{ "nonempty", OPT_NONEMPTY, false },
	{ "name-format", OPT_NAME_FORMAT, true },
	{ "namespace", OPT_NAMESPACE, true },
	{ "status-interval", OPT_STATUS_INTERVAL, true },
	{ "disable-extension", OPT_DISABLE_EXTENSION, true },
	{ "prefetch", OPT_PREFETCH, true },
	{ "layout", OPT_LAYOUT, true },
	{ "list-ahead", OPT_LIST_AHEAD, true },
};

/* Mount-helper options (mount(8), mount.fuse3, fstab) that FUSE refuses or
 * that mean nothing here; "rw" must not undo our "ro". */
static const char *const dropped_opts[] = {
	"_netdev", "nofail", "noauto", "auto",     "user", "nouser",
	"users",   "owner",  "group",  "defaults", "rw",   "ro",
};

/* Prefixes of options that are fstab annotations or that we always set. */
static const char *const dropped_prefixes[] = {
	"x-",
	"comment=",
	"fsname=",
	"subtype=",
};

struct parse_state {
	const char *url;
	const char *mountpoint;
	GPtrArray *fuse_opts; /* the user's -o options for FUSE, unescaped */
	char *config;         /* --config=FILE, else NULL: the default */
	bool list_accounts;   /* --accounts */
};

void fs_options_error(GError **error, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	g_autofree char *msg = g_strdup_vprintf(fmt, ap);
	va_end(ap);
	g_set_error_literal(error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
			    msg);
}

/* Long option by name; '_' and '-' are the same in names. */
static const struct opt_spec *opt_lookup(const char *name, size_t len)
{
	for (size_t i = 0; i < G_N_ELEMENTS(opt_specs); i++) {
		const char *s = opt_specs[i].name;
		size_t j;

		if (strlen(s) != len)
			continue;
		for (j = 0; j < len; j++) {
			char c = name[j] == '_' ? '-' : name[j];

			if (c != s[j])
				break;
		}
		if (j == len)
			return &opt_specs[i];
	}
	return NULL;
}

/* Strict decimal: digits only, no sign, no overflow. */
static bool parse_uint(const char *s, unsigned min, unsigned max, unsigned *out)
{
	unsigned long v = 0;

	if (!*s)
		return false;
	for (; *s; s++) {
		if (!g_ascii_isdigit(*s))
			return false;
		v = v * 10 + (unsigned long)(*s - '0');
		if (v > max)
			return false;
	}
	if (v < min)
		return false;
	*out = (unsigned)v;
	return true;
}

/* Octal, as mount(8) and umask(1) write it: "077", "0022", "7". */
static bool parse_octal_mask(const char *s, unsigned *out)
{
	unsigned v = 0;

	if (!*s || strlen(s) > 4)
		return false;
	for (; *s; s++) {
		if (*s < '0' || *s > '7')
			return false;
		v = v * 8 + (unsigned)(*s - '0');
	}
	if (v > 0777)
		return false;
	*out = v;
	return true;
}

/* A user or group: a number, or a name of the system's. */
static bool parse_owner(const char *s, bool group, unsigned *out)
{
	if (parse_uint(s, 0, G_MAXINT32, out))
		return true;
	if (group) {
		struct group *gr = getgrnam(s);

		if (gr)
			*out = gr->gr_gid;
		return gr != NULL;
	} else {
		struct passwd *pw = getpwnam(s);

		if (pw)
			*out = pw->pw_uid;
		return pw != NULL;
	}
}

/* A path option: "~/" expanded (fstab has no shell), made absolute because
 * the daemon changes to "/" when it detaches. */
static char *make_absolute(const char *path)
{
	if (path[0] == '~' && (path[1] == '/' || path[1] == '\0')) {
		const char *home = fs_config_home_dir();

		return g_build_filename(home, path + 1, NULL);
	}
	if (g_path_is_absolute(path))
		return g_strdup(path);

	g_autofree char *cwd = g_get_current_dir();

	return g_build_filename(cwd, path, NULL);
}

static int set_string(char **field, const struct opt_spec *spec,
		      const char *value, bool is_path, GError **error)
{
	if (!*value) {
		fs_options_error(error, "--%s needs a value", spec->name);
		return -1;
	}
	g_free(*field);
	*field = is_path ? make_absolute(value) : g_strdup(value);
	return 0;
}

/* "1048576", "500K", "500M", "2G", "1T" (powers of 1024); 0 is allowed. */
static bool parse_size(const char *value, uint64_t *out)
{
	char *end = NULL;
	guint64 n;
	unsigned shift = 0;

	if (!g_ascii_isdigit(value[0]))
		return false;
	errno = 0;
	n = g_ascii_strtoull(value, &end, 10);
	if (errno != 0)
		return false;
	switch (g_ascii_toupper(*end)) {
	case '\0':
		break;
	case 'K':
		shift = 10;
		break;
	case 'M':
		shift = 20;
		break;
	case 'G':
		shift = 30;
		break;
	case 'T':
		shift = 40;
		break;
	default:
		return false;
	}
	if (*end) {
		end++;
		if (g_ascii_toupper(*end) == 'B' ||
		    (g_ascii_toupper(end[0]) == 'I' &&
		     g_ascii_toupper(end[1]) == 'B'))
			end += g_ascii_toupper(*end) == 'B' ? 1 : 2;
	}
	if (*end != '\0' || (shift && n > (G_MAXUINT64 >> shift)))
		return false;
	*out = n << shift;
	return true;
}

/* --layout: eml (the default), parts, maildir. */
static int parse_layout(const char *value, FsLayoutKind *out, GError **error)
{
	if (strcmp(value, "eml") == 0) {
		*out = FS_LAYOUT_EML;
	} else if (strcmp(value, "parts") == 0) {
		*out = FS_LAYOUT_PARTS;
	} else if (strcmp(value, "maildir") == 0) {
		*out = FS_LAYOUT_MAILDIR;
	} else {
		fs_options_error(error,
				 "--layout must be eml, parts or maildir");
		return -1;
	}
	return 0;
}
static int apply_oauth_opt(FsOptions *opts, const struct opt_spec *spec,
			   const char *value, GError **error);

/* A number option: value within min..max, else msg. */
static int uint_opt(const char *value, unsigned min, unsigned max,
		    unsigned *out, GError **error, const char *msg)
{
	if (parse_uint(value, min, max, out))
		return 0;
	fs_options_error(error, "%s", msg);
	return -1;
}

/* The field of an option that takes no value (OPT_INSECURE, OPT_XATTR,
 * OPT_OFFLINE, OPT_NONEMPTY). */
static bool *flag_field(FsOptions *opts, enum opt_id id)
{
	if (id == OPT_XATTR)
		return &opts->xattr;
	if (id == OPT_OFFLINE)
		return &opts->offline;
	if (id == OPT_NONEMPTY)
		return &opts->nonempty;
	return &opts->insecure;
}

/* Per-server switches: --disable-extension (given twice, both lists
 * count), --prefetch and --namespace. */
static int apply_provider_opt(FsOptions *opts, const struct opt_spec *spec,
			      const char *value, GError **error)
{
	if (spec->id == OPT_NAMESPACE) {
		if (g_strcmp0(value, "top") != 0 &&
		    g_strcmp0(value, "server") != 0) {
			fs_options_error(error, "--namespace must be top or "
						"server");
			return -1;
		}
		opts->namespace_server = g_str_equal(value, "server");
		return 0;
	}
	if (spec->id == OPT_DISABLE_EXTENSION) {
		char *old = opts->disable_extension;

		opts->disable_extension =
		    old ? g_strjoin(" ", old, value, NULL) : g_strdup(value);
		g_free(old);
		return 0;
	}
	if (strcmp(value, "auto") == 0)
		opts->prefetch = FS_OPT_PREFETCH_AUTO;
	else if (strcmp(value, "off") == 0)
		opts->prefetch = FS_OPT_PREFETCH_OFF;
	else if (strcmp(value, "ahead") == 0)
		opts->prefetch = FS_OPT_PREFETCH_AHEAD;
	else {
		fs_options_error(error,
				 "--prefetch must be auto, off or ahead");
		return -1;
	}
	return 0;
}

static int apply_opt(FsOptions *opts, const struct opt_spec *spec,
		     const char *value, GError **error)
{
	switch (spec->id) {
	case OPT_PASSWORD_COMMAND:
		return set_string(&opts->password_command, spec, value, false,
				  error);
	case OPT_PASSWORD_FILE:
		return set_string(&opts->password_file, spec, value, true,
				  error);
	case OPT_CAFILE:
		return set_string(&opts->cafile, spec, value, true, error);
	case OPT_CACHE_DIR:
		return set_string(&opts->cache_dir, spec, value, true, error);
	case OPT_DISABLE_EXTENSION:
	case OPT_PREFETCH:
	case OPT_NAMESPACE:
		return apply_provider_opt(opts, spec, value, error);
	case OPT_CONNECTIONS:
		return uint_opt(value, 1, 64, &opts->connections, error,
				"--connections must be between 1 and 64");
	case OPT_TIMEOUT:
		return uint_opt(value, 1, 3600, &opts->timeout, error,
				"--timeout must be between 1 and 3600");
	case OPT_INSECURE:
	case OPT_XATTR:
	case OPT_OFFLINE:
	case OPT_NONEMPTY:
		*flag_field(opts, spec->id) = true;
		return 0;
	case OPT_UMASK:
		if (!parse_octal_mask(value, &opts->umask)) {
			fs_options_error(error,
					 "umask must be octal, 000 to 777, "
					 "such as 077 or 022");
			return -1;
		}
		return 0;
	case OPT_UID:
	case OPT_GID: {
		bool group = spec->id == OPT_GID;
		unsigned id;

		if (!parse_owner(value, group, &id)) {
			fs_options_error(error, "%s: no such %s: '%s'",
					 spec->name, group ? "group" : "user",
					 value);
			return -1;
		}
		if (group)
			opts->gid = (gid_t)id;
		else
			opts->uid = (uid_t)id;
		return 0;
	}
	case OPT_CACHE_SIZE:
		if (!parse_size(value, &opts->cache_size)) {
			fs_options_error(
			    error, "--cache-size must be a size such as 500M, "
				   "2G or 0 (no limit)");
			return -1;
		}
		return 0;
	case OPT_POLL_INTERVAL:
		return uint_opt(value, 5, 86400, &opts->poll_interval, error,
				"--poll-interval must be between 5 and 86400 "
				"seconds");
	case OPT_AUTH:
	case OPT_TOKEN_COMMAND:
	case OPT_PROVIDER:
	case OPT_OAUTH_TOKEN_URL:
	case OPT_OAUTH_DEVICE_URL:
	case OPT_OAUTH_CLIENT_ID:
	case OPT_OAUTH_CLIENT_SECRET:
	case OPT_OAUTH_CLIENT_SECRET_COMMAND:
	case OPT_OAUTH_SCOPE:
	case OPT_OAUTH_REFRESH_TOKEN_COMMAND:
		return apply_oauth_opt(opts, spec, value, error);
	case OPT_NAME_FORMAT: {
		/* Checked here so that a bad format fails before mounting. */
		g_autoptr(FsNameFormat) fmt =
		    fs_name_format_parse(value, error);

		if (!fmt)
			return -1;
		return set_string(&opts->name_format, spec, value, false,
				  error);
	}
	case OPT_STATUS_INTERVAL:
		return uint_opt(value, 0, 3600, &opts->status_interval, error,
				"--status-interval must be between 0 (off) and "
				"3600 seconds");
	case OPT_LAYOUT:
		return parse_layout(value, &opts->layout, error);
	case OPT_LIST_AHEAD:
		return uint_opt(value, 0, 16, &opts->list_ahead, error,
				"--list-ahead must be between 0 (off) and 16 "
				"levels");
	}
	return 0;
}

int fs_options_set(FsOptions *opts, const char *name, const char *value,
		   GError **error)
{
	const struct opt_spec *spec = opt_lookup(name, strlen(name));

	if (!spec)
		return -ENOENT;
	if (!spec->takes_value) {
		/* A flag: "true" sets it; "false" leaves the default. */
		if (g_ascii_strcasecmp(value, "true") == 0 ||
		    strcmp(value, "1") == 0)
			value = "";
		else if (g_ascii_strcasecmp(value, "false") == 0 ||
			 strcmp(value, "0") == 0)
			return 0;
		else {
			fs_options_error(error, "%s takes true or false",
					 spec->name);
			return -EINVAL;
		}
	}
	return apply_opt(opts, spec, value, error) < 0 ? -EINVAL : 0;
}

const char *fs_options_name(unsigned i)
{
	return i < G_N_ELEMENTS(opt_specs) ? opt_specs[i].name : NULL;
}

/* --auth=NAME: the index in this table is the ImapAuthMech. */
static const char *const auth_names[] = {
	"auto", "plain", "login", "xoauth2", "oauthbearer",
};

static int apply_oauth_opt(FsOptions *opts, const struct opt_spec *spec,
			   const char *value, GError **error)
{
	char **fields[] = {
		[OPT_TOKEN_COMMAND - OPT_AUTH] = &opts->token_command,
		[OPT_PROVIDER - OPT_AUTH] = &opts->provider,
		[OPT_OAUTH_TOKEN_URL - OPT_AUTH] = &opts->oauth_token_url,
		[OPT_OAUTH_DEVICE_URL - OPT_AUTH] = &opts->oauth_device_url,
		[OPT_OAUTH_CLIENT_ID - OPT_AUTH] = &opts->oauth_client_id,
		[OPT_OAUTH_CLIENT_SECRET - OPT_AUTH] =
		    &opts->oauth_client_secret,
		[OPT_OAUTH_CLIENT_SECRET_COMMAND - OPT_AUTH] =
		    &opts->oauth_client_secret_command,
		[OPT_OAUTH_SCOPE - OPT_AUTH] = &opts->oauth_scope,
		[OPT_OAUTH_REFRESH_TOKEN_COMMAND - OPT_AUTH] =
		    &opts->oauth_refresh_token_command,
	};

	if (spec->id == OPT_AUTH) {
		for (size_t i = 0; i < G_N_ELEMENTS(auth_names); i++)
			if (g_ascii_strcasecmp(value, auth_names[i]) == 0) {
				opts->auth = (unsigned)i;
				return 0;
			}
		fs_options_error(error, "--auth must be auto, plain, login, "
					"xoauth2 or oauthbearer");
		return -1;
	}
	if (spec->id == OPT_PROVIDER && g_ascii_strcasecmp(value, "google") &&
	    g_ascii_strcasecmp(value, "microsoft")) {
		fs_options_error(error,
				 "--provider must be google or microsoft");
		return -1;
	}
	return set_string(fields[spec->id - OPT_AUTH], spec, value, false,
			  error);
}

/* A secret given where other users can see it (argv, -o of a mount). */
static int refuse_secret(const struct opt_spec *spec, GError **error)
{
	fs_options_error(error,
			 "%s is a secret and is not accepted on the command "
			 "line (other users can see it there): put it in the "
			 "config file or use --%s-command",
			 spec->name, spec->name);
	return -1;
}

static bool is_dropped(const char *opt)
{
	for (size_t i = 0; i < G_N_ELEMENTS(dropped_opts); i++)
		if (strcmp(opt, dropped_opts[i]) == 0)
			return true;
	for (size_t i = 0; i < G_N_ELEMENTS(dropped_prefixes); i++)
		if (g_str_has_prefix(opt, dropped_prefixes[i]))
			return true;
	return false;
}

/* One option of a -o list, unescaped. */
static int mount_opt(FsOptions *opts, struct parse_state *st, const char *opt,
		     GError **error)
{
	const char *eq = strchr(opt, '=');
	size_t nlen = eq ? (size_t)(eq - opt) : strlen(opt);
	const struct opt_spec *spec = opt_lookup(opt, nlen);

	/* fstab: -o config=FILE, for the account named as the device. */
	if (g_str_has_prefix(opt, "config=")) {
		if (!opt[7]) {
			fs_options_error(error, "option 'config' needs a "
						"value");
			return -1;
		}
		g_free(st->config);
		st->config = g_strdup(opt + 7);
		return 0;
	}
	if (spec) {
		if (spec->takes_value && !eq) {
			fs_options_error(error, "option '%.*s' needs a value",
					 (int)nlen, opt);
			return -1;
		}
		if (!spec->takes_value && eq) {
			fs_options_error(error, "option '%.*s' takes no value",
					 (int)nlen, opt);
			return -1;
		}
		if (spec->secret)
			return refuse_secret(spec, error);
		return apply_opt(opts, spec, eq ? eq + 1 : "", error);
	}
	if (!is_dropped(opt))
		g_ptr_array_add(st->fuse_opts, g_strdup(opt));
	return 0;
}

/* Split a -o list the way fuse_opt does: ',' separates, '\' escapes the
 * next character. */
static int mount_opt_list(FsOptions *opts, struct parse_state *st,
			  const char *list, GError **error)
{
	g_autoptr(GString) cur = g_string_new(NULL);

	for (const char *p = list;; p++) {
		if (*p == '\\' && p[1]) {
			g_string_append_c(cur, *++p);
		} else if (*p == ',' || *p == '\0') {
			if (cur->len &&
			    mount_opt(opts, st, cur->str, error) < 0)
				return -1;
			g_string_truncate(cur, 0);
			if (!*p)
				return 0;
		} else {
			g_string_append_c(cur, *p);
		}
	}
}

static int check_mountpoint(FsOptions *opts, const char *mp, GError **error)
{
	char *real = realpath(mp, NULL);
	struct stat st;
	int e;

	if (!real) {
		e = errno;
		fs_options_error(error, "mountpoint %s: %s%s", mp,
				 g_strerror(e),
				 e == ENOTCONN ? " (a stale mount? try "
						 "fusermount3 -u)"
					       : "");
		return -1;
	}
	e = stat(real, &st) < 0 ? errno : S_ISDIR(st.st_mode) ? 0 : ENOTDIR;
	if (e) {
		free(real);
		fs_options_error(error, "mountpoint %s: %s", mp, g_strerror(e));
		return -1;
	}
	opts->mountpoint = g_strdup(real);
	free(real);
	return 0;
}

static char *default_cache_dir(void)
{
	const char *xdg = g_getenv("XDG_CACHE_HOME");
	const char *home;

	/* The XDG spec says to ignore a relative value. */
	if (xdg && g_path_is_absolute(xdg))
		return g_build_filename(xdg, "imapfs", NULL);
	home = fs_config_home_dir();
	g_autofree char *dir = g_build_filename(home, ".cache", "imapfs", NULL);

	return make_absolute(dir);
}

/* Each named account has a cache directory of its own, so that two of
 * them never share a lock, also when they name the same server and user. */
static char *account_cache_dir(const char *account)
{
	g_autofree char *root = default_cache_dir();

	return g_build_filename(root, account, NULL);
}

static int build_fuse_args(FsOptions *opts, const char *prog,
			   const struct parse_state *st, const char *fsname,
			   GError **error)
{
	g_autofree char *fsname_opt = g_strconcat("fsname=", fsname, NULL);
	char *list = NULL;
	int r = 0;

	for (guint i = 0; i < st->fuse_opts->len && r == 0; i++) {
		const char *opt = g_ptr_array_index(st->fuse_opts, i);

		r = fuse_opt_add_opt_escaped(&list, opt);
	}
	/* Ours come last: for FUSE's flags the last one wins. */
	if (r == 0)
		r = fuse_opt_add_opt(&list, "ro,noatime,default_permissions,"
					    "subtype=imapfs");
	if (r == 0)
		r = fuse_opt_add_opt_escaped(&list, fsname_opt);
	if (r == 0)
		r = fuse_opt_add_arg(&opts->fuse_args, prog);
	if (r == 0)
		r = fuse_opt_add_arg(&opts->fuse_args, "-o");
	if (r == 0)
		r = fuse_opt_add_arg(&opts->fuse_args, list);
	free(list);
	if (r != 0) {
		fs_options_error(error, "out of memory");
		return -1;
	}
	return 0;
}

/* --accounts and --config[=]FILE: 1 when argv[*i] is one of them, 0 when
 * not, -1 with error set. */
static int config_arg(int argc, char **argv, int *i, struct parse_state *st,
		      GError **error)
{
	const char *a = argv[*i];
	const char *v = NULL;

	if (strcmp(a, "--accounts") == 0) {
		st->list_accounts = true;
		return 1;
	}
	if (g_str_has_prefix(a, "--config="))
		v = a + 9;
	else if (strcmp(a, "--config") != 0)
		return 0;
	else if (*i + 1 < argc)
		v = argv[++*i];
	if (!v || !*v) {
		fs_options_error(error, "option '--config' needs a value");
		return -1;
	}
	g_free(st->config);
	st->config = g_strdup(v);
	return 1;
}

/* What a user who typed too little needs: the usage line and where to
 * read more. */
static void missing_args(GError **error, const char *argv0, const char *what)
{
	g_autofree char *prog = g_path_get_basename(argv0);

	fs_options_error(error,
			 "missing %s\nusage: %s [options] URL MOUNTPOINT\n"
			 "       %s [options] ACCOUNT [MOUNTPOINT]\n"
			 "Try '%s --help' for more information.",
			 what, prog, prog, prog);
}

/* The loop over argv; options may come before or after the positionals. */
static int parse_argv(int argc, char **argv, FsOptions *opts,
		      struct parse_state *st, const char *prog, GError **error)
{
	bool only_positionals = false;
	int c;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (only_positionals || a[0] != '-' || a[1] == '\0') {
			if (!st->url) {
				st->url = a;
			} else if (!st->mountpoint) {
				st->mountpoint = a;
			} else {
				fs_options_error(error,
						 "unexpected argument '%s'", a);
				return -1;
			}
		} else if (strcmp(a, "--") == 0) {
			only_positionals = true;
		} else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			fs_options_print_help(prog);
			return FS_OPTIONS_EXIT_OK;
		} else if (strcmp(a, "-V") == 0 ||
			   strcmp(a, "--version") == 0) {
			fs_options_print_version();
			return FS_OPTIONS_EXIT_OK;
		} else if (strcmp(a, "-f") == 0) {
			opts->foreground = true;
		} else if (strcmp(a, "-d") == 0) {
			opts->debug = true;
		} else if (strcmp(a, "--authorize") == 0) {
			opts->authorize = true;
		} else if (strncmp(a, "-o", 2) == 0) {
			const char *list = a[2] ? a + 2 : NULL;

			if (!list && i + 1 < argc)
				list = argv[++i];
			if (!list) {
				fs_options_error(error,
						 "option '-o' needs a value");
				return -1;
			}
			if (mount_opt_list(opts, st, list, error) < 0)
				return -1;
		} else if ((c = config_arg(argc, argv, &i, st, error)) != 0) {
			if (c < 0)
				return -1;
		} else if (a[1] == '-') {
			const char *name = a + 2;
			const char *eq = strchr(name, '=');
			size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
			const struct opt_spec *spec = opt_lookup(name, nlen);
			const char *value = eq ? eq + 1 : NULL;

			/* Show only the name: a mistyped option may carry a
			 * secret as its value. */
			if (!spec) {
				fs_options_error(error,
						 "unknown option '--%.*s'",
						 (int)nlen, name);
				return -1;
			}
			if (!spec->takes_value && value) {
				fs_options_error(error,
						 "option '--%s' takes no value",
						 spec->name);
				return -1;
			}
			if (spec->secret)
				return refuse_secret(spec, error);
			if (spec->takes_value && !value) {
				if (i + 1 >= argc) {
					fs_options_error(
					    error,
					    "option '--%s' needs a "
					    "value",
					    spec->name);
					return -1;
				}
				value = argv[++i];
			}
			if (apply_opt(opts, spec, value ? value : "", error) <
			    0)
				return -1;
		} else {
			fs_options_error(error, "unknown option '%.2s'", a);
			return -1;
		}
	}
	return FS_OPTIONS_RUN;
}

/* "imapfs NAME [DIR]" and --accounts: a first look at argv finds them;
 * the account's settings then go into opts before the command line, which
 * overrides them. Returns FS_OPTIONS_RUN, FS_OPTIONS_EXIT_OK or -1. */
static int read_config(int argc, char **argv, FsOptions *opts,
		       struct parse_state *st, FsConfigAccount *acct,
		       const char *prog, GError **error)
{
	FsOptions scratch = { 0 };
	struct parse_state first = { 0 };
	int r;

	first.fuse_opts = g_ptr_array_new_with_free_func(g_free);
	r = parse_argv(argc, argv, &scratch, &first, prog, error);
	fs_options_clear(&scratch);
	if (r == FS_OPTIONS_RUN && first.list_accounts) {
		r = fs_config_print_accounts(first.config, error) < 0
			? -1
			: FS_OPTIONS_EXIT_OK;
	} else if (r == FS_OPTIONS_RUN && first.url &&
		   fs_config_is_account_name(first.url)) {
		opts->account = g_strdup(first.url);
		if (fs_config_load_account(first.config, first.url, opts, acct,
					   error) < 0 ||
		    (acct->options &&
		     mount_opt_list(opts, st, acct->options, error) < 0))
			r = -1;
	}
	g_ptr_array_unref(first.fuse_opts);
	g_free(first.config);
	return r;
}

/* The account's URL and mount point, unless the command line gave one. */
static int use_account(FsOptions *opts, struct parse_state *st,
		       FsConfigAccount *acct, GError **error)
{
	st->url = acct->url;
	if (!st->mountpoint)
		st->mountpoint = acct->mountpoint;
	if (!st->mountpoint && !opts->authorize) {
		fs_options_error(error,
				 "account %s has no mountpoint: add "
				 "\"mountpoint = DIR\" to [%s] in the config "
				 "file, or give a directory after the name",
				 opts->account, opts->account);
		return -1;
	}
	return 0;
}

int fs_options_parse(int argc, char **argv, FsOptions *opts, GError **error)
{
	const char *prog = argc > 0 && argv[0] ? argv[0] : "imapfs";
	struct parse_state st = { 0 };
	g_autofree char *fsname = NULL;
	FsConfigAccount acct = { 0 };
	int r;

	memset(opts, 0, sizeof(*opts));
	opts->connections = 4;
	opts->timeout = 10;
	opts->poll_interval = 60;
	opts->status_interval = 3;
	opts->list_ahead = 3;
	opts->umask = 077;
	opts->uid = getuid();
	opts->gid = getgid();
	st.fuse_opts = g_ptr_array_new_with_free_func(g_free);

	r = read_config(argc, argv, opts, &st, &acct, prog, error);
	if (r == FS_OPTIONS_RUN)
		r = parse_argv(argc, argv, opts, &st, prog, error);
	if (r != FS_OPTIONS_RUN)
		goto out;
	r = -1;
	if (opts->account && use_account(opts, &st, &acct, error) < 0)
		goto out;
	if (!st.url) {
		missing_args(error, prog, "URL or ACCOUNT");
		goto out;
	}
	if (!st.mountpoint && !opts->authorize) {
		missing_args(error, prog, "MOUNTPOINT");
		goto out;
	}
	if (imap_url_parse(st.url, &opts->server, error) < 0)
		goto out;
	/* A named account shows its name, as in an fstab line. */
	fsname = opts->account ? g_strdup(opts->account)
			       : imap_url_to_string(&opts->server);
	opts->url = g_strdup(st.url);
	if (opts->authorize) { /* --authorize: no mount */
		r = FS_OPTIONS_RUN;
		goto out;
	}
	if (check_mountpoint(opts, st.mountpoint, error) < 0)
		goto out;
	if (opts->cafile && access(opts->cafile, R_OK) < 0) {
		int e = errno;

		fs_options_error(error, "cafile %s: %s", opts->cafile,
				 g_strerror(e));
		goto out;
	}
	if (!opts->cache_dir && opts->account)
		opts->cache_dir = account_cache_dir(opts->account);
	if (!opts->cache_dir)
		opts->cache_dir = default_cache_dir();
	if (opts->debug)
		opts->foreground = true;
	if (build_fuse_args(opts, prog, &st, fsname, error) < 0)
		goto out;
	r = FS_OPTIONS_RUN;
out:
	g_ptr_array_unref(st.fuse_opts);
	g_free(st.config);
	fs_config_account_clear(&acct);
	if (r != FS_OPTIONS_RUN)
		fs_options_clear(opts); /* nothing for the caller to free */
	return r;
}

void fs_options_clear(FsOptions *opts)
{
	g_clear_pointer(&opts->url, g_free);
	g_clear_pointer(&opts->account, g_free);
	imap_url_clear(&opts->server);
	g_clear_pointer(&opts->mountpoint, g_free);
	g_clear_pointer(&opts->password_command, g_free);
	g_clear_pointer(&opts->password_file, g_free);
	g_clear_pointer(&opts->cafile, g_free);
	g_clear_pointer(&opts->cache_dir, g_free);
	g_clear_pointer(&opts->disable_extension, g_free);
	g_clear_pointer(&opts->token_command, g_free);
	g_clear_pointer(&opts->provider, g_free);
	g_clear_pointer(&opts->oauth_token_url, g_free);
	g_clear_pointer(&opts->oauth_device_url, g_free);
	g_clear_pointer(&opts->oauth_client_id, g_free);
	if (opts->oauth_client_secret)
		explicit_bzero(opts->oauth_client_secret,
			       strlen(opts->oauth_client_secret));
	g_clear_pointer(&opts->oauth_client_secret, g_free);
	g_clear_pointer(&opts->oauth_client_secret_command, g_free);
	g_clear_pointer(&opts->oauth_scope, g_free);
	g_clear_pointer(&opts->oauth_refresh_token_command, g_free);
	g_clear_pointer(&opts->name_format, g_free);
	fuse_opt_free_args(&opts->fuse_args);
	memset(&opts->fuse_args, 0, sizeof(opts->fuse_args));
}
