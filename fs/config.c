/* fs/config.c: named accounts in the config file.
 *
 * The file is read whole into a GKeyFile; its text is kept only to find
 * the line a message names (GKeyFile does not keep line numbers). Every
 * key of an account goes through fs_options_set(), the same table as the
 * command line, so an option added there works here with no code; only
 * url, mountpoint and options are handled here. Values are taken as
 * written, without quotes or escapes, so that a shell command keeps its
 * backslashes. No state outside the calls; a value is never echoed in a
 * message (it may be a secret).
 */
#include "fs/config.h"

#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "imap/url.h"

/* The keys that are not options. */
static const char *const own_keys[] = { "url", "mountpoint", "options" };

typedef struct config {
	char *path;    /* as opened */
	char *display; /* for messages: $HOME shown as "~" */
	char *text;
	GKeyFile *kf;
} Config;

static void config_free(Config *c)
{
	if (!c)
		return;
	g_free(c->path);
	g_free(c->display);
	g_free(c->text);
	if (c->kf)
		g_key_file_unref(c->kf);
	g_free(c);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC(Config, config_free)

const char *fs_config_home_dir(void)
{
	static char *passwd_home; /* set once, kept */
	const char *home = g_getenv("HOME");
	struct stat st;

	/* mount(8) run by a user hands its helper root's HOME: a HOME that
	 * another user owns is not ours, the password database knows. */
	if (home && *home && (stat(home, &st) < 0 || st.st_uid == getuid()))
		return home;
	if (!g_atomic_pointer_get(&passwd_home)) {
		struct passwd *pw = getpwuid(getuid());
		char *h = g_strdup(pw && pw->pw_dir ? pw->pw_dir : "/");

		if (!g_atomic_pointer_compare_and_exchange(&passwd_home, NULL,
							   h))
			g_free(h);
	}
	return passwd_home;
}

static const char *home_dir(void)
{
	return fs_config_home_dir();
}

char *fs_config_default_path(void)
{
	const char *xdg = g_getenv("XDG_CONFIG_HOME");

	/* The XDG spec says to ignore a relative value. */
	if (xdg && g_path_is_absolute(xdg))
		return g_build_filename(xdg, "imapfs", "config", NULL);
	return g_build_filename(home_dir(), ".config", "imapfs", "config",
				NULL);
}

gboolean fs_config_is_account_name(const char *arg)
{
	/* A URL has a scheme; an account name has no ':'. */
	return strchr(arg, ':') == NULL;
}

/* A name that is safe as a directory name and an fsname. */
static gboolean valid_account_name(const char *name)
{
	if (!*name || name[0] == '.' || name[0] == '-' || strlen(name) > 64)
		return FALSE;
	for (const char *p = name; *p; p++)
		if (!g_ascii_isalnum(*p) && !strchr("._-@+", *p))
			return FALSE;
	return TRUE;
}

static char *display_path(const char *path)
{
	const char *home = home_dir();
	size_t n = strlen(home);

	if (n > 1 && strncmp(path, home, n) == 0 && path[n] == '/')
		return g_strconcat("~", path + n, NULL);
	return g_strdup(path);
}

/* Line (from 1) of key in group, the last one; 0 when not found. With
 * key NULL: the group's header. */
static unsigned find_line(const char *text, const char *group, const char *key)
{
	g_auto(GStrv) lines = g_strsplit(text, "\n", -1);
	gboolean in_group = FALSE;
	unsigned found = 0;

	for (unsigned i = 0; lines[i]; i++) {
		char *l = g_strstrip(lines[i]);
		size_t n = strlen(l);

		if (l[0] == '[' && n >= 2 && l[n - 1] == ']') {
			l[n - 1] = '\0';
			in_group = strcmp(l + 1, group) == 0;
			if (in_group && !key)
				found = i + 1;
			continue;
		}
		char *eq = strchr(l, '=');

		if (!in_group || !key || !eq || l[0] == '#')
			continue;
		*eq = '\0';
		if (strcmp(g_strstrip(l), key) == 0)
			found = i + 1;
	}
	return found;
}

static void config_error(GError **error, const Config *c, unsigned line,
			 const char *fmt, ...) G_GNUC_PRINTF(4, 5);

static void config_error(GError **error, const Config *c, unsigned line,
			 const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	g_autofree char *msg = g_strdup_vprintf(fmt, ap);
	va_end(ap);
	if (line)
		fs_options_error(error, "%s:%u: %s", c->display, line, msg);
	else
		fs_options_error(error, "%s: %s", c->display, msg);
}

/* A secret in a value: warn when others may read the file. */
static gboolean is_secret_key(const char *key)
{
	return strcmp(key, "password") == 0 || strcmp(key, "token") == 0 ||
	       g_str_has_suffix(key, "-secret") ||
	       g_str_has_suffix(key, "-token") ||
	       g_str_has_suffix(key, "-password");
}

static void check_secrets(const Config *c, mode_t mode)
{
	g_auto(GStrv) groups = g_key_file_get_groups(c->kf, NULL);

	if (!(mode & (S_IRGRP | S_IROTH)))
		return;
	for (unsigned i = 0; groups[i]; i++) {
		g_auto(GStrv) keys =
		    g_key_file_get_keys(c->kf, groups[i], NULL, NULL);

		for (unsigned j = 0; keys && keys[j]; j++) {
			if (!is_secret_key(keys[j]))
				continue;
			fprintf(stderr,
				"imapfs: warning: %s holds a secret (%s in "
				"[%s]) and other users can read it: chmod "
				"600 %s\n",
				c->display, keys[j], groups[i], c->display);
			return;
		}
	}
}

/* GKeyFile's messages quote the line they did not understand, which may
 * hold a secret: name its number instead. */
static void parse_error(GError **error, const Config *c, const GError *kf_error)
{
	const char *msg = kf_error->message;
	const char *open = strstr(msg, "\xe2\x80\x9c"); /* a curly quote */
	const char *close = open ? strstr(open + 3, "\xe2\x80\x9d") : NULL;
	unsigned line = 0;

	if (!close) {
		config_error(error, c, 0, "%s", msg);
		return;
	}
	g_autofree char *quoted =
	    g_strndup(open + 3, (size_t)(close - open - 3));
	g_auto(GStrv) lines = g_strsplit(c->text, "\n", -1);

	for (unsigned i = 0; lines[i] && !line; i++)
		if (strcmp(g_strstrip(lines[i]), quoted) == 0)
			line = i + 1;
	if (strstr(close, "not a key-value pair"))
		config_error(error, c, line,
			     "not a \"key = value\" line, a [group] or a "
			     "# comment");
	else
		config_error(error, c, line, "%.*s\"...\"%s", (int)(open - msg),
			     msg, close + 3);
}

static Config *config_load(const char *path, GError **error)
{
	g_autoptr(Config) c = g_new0(Config, 1);
	g_autoptr(GError) kf_error = NULL;
	struct stat st;
	gsize len;

	c->path = path ? g_strdup(path) : fs_config_default_path();
	c->display = display_path(c->path);
	c->kf = g_key_file_new();
	if (!g_file_get_contents(c->path, &c->text, &len, &kf_error)) {
		if (g_error_matches(kf_error, G_FILE_ERROR, G_FILE_ERROR_NOENT))
			config_error(error, c, 0,
				     "no such config file: give a URL "
				     "(imaps://USER@HOST) or create the file "
				     "with a group [NAME] per account (see "
				     "imapfs(1))");
		else
			fs_options_error(error, "%s", kf_error->message);
		return NULL;
	}
	if (!g_key_file_load_from_data(c->kf, c->text, len, G_KEY_FILE_NONE,
				       &kf_error)) {
		parse_error(error, c, kf_error);
		return NULL;
	}
	if (stat(c->path, &st) == 0)
		check_secrets(c, st.st_mode);
	return g_steal_pointer(&c);
}

/* Levenshtein distance, for "did you mean". */
static unsigned distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	g_autofree unsigned *row = g_new(unsigned, lb + 1);

	for (size_t j = 0; j <= lb; j++)
		row[j] = (unsigned)j;
	for (size_t i = 1; i <= la; i++) {
		unsigned diag = row[0];

		row[0] = (unsigned)i;
		for (size_t j = 1; j <= lb; j++) {
			unsigned up = row[j];
			unsigned cost = a[i - 1] == b[j - 1] ? 0 : 1;

			row[j] =
			    MIN(MIN(row[j] + 1, row[j - 1] + 1), diag + cost);
			diag = up;
		}
	}
	return row[lb];
}

/* The closest known key, when it is close; NULL otherwise. */
static const char *closest_key(const char *key)
{
	const char *best = NULL;
	unsigned best_d = G_MAXUINT;
	unsigned limit = strlen(key) < 6 ? 1 : 2;
	const char *name;

	for (unsigned i = 0; (name = fs_options_name(i)); i++) {
		unsigned d = distance(key, name);

		if (d < best_d)
			best = name, best_d = d;
	}
	for (unsigned i = 0; i < G_N_ELEMENTS(own_keys); i++) {
		unsigned d = distance(key, own_keys[i]);

		if (d < best_d)
			best = own_keys[i], best_d = d;
	}
	return best_d <= limit ? best : NULL;
}

static void unknown_key(GError **error, const Config *c, unsigned line,
			const char *name, const char *key)
{
	const char *near = closest_key(key);

	if (strcmp(key, "password") == 0)
		config_error(error, c, line,
			     "unknown key \"password\" in [%s]: the config "
			     "file holds no password; use password-command "
			     "or password-file",
			     name);
	else if (near)
		config_error(error, c, line,
			     "unknown key \"%s\" in [%s] (did you mean "
			     "\"%s\"?)",
			     key, name, near);
	else
		config_error(error, c, line, "unknown key \"%s\" in [%s]", key,
			     name);
}

/* "~/" is the home directory; anything else must be absolute. */
static char *account_path(const char *value)
{
	if (value[0] == '~' && (value[1] == '/' || value[1] == '\0'))
		return g_build_filename(home_dir(), value + 1, NULL);
	return g_path_is_absolute(value) ? g_strdup(value) : NULL;
}

static int apply_own_key(const Config *c, const char *name, const char *key,
			 const char *value, unsigned line, FsConfigAccount *out,
			 GError **error)
{
	if (strcmp(key, "url") == 0) {
		g_free(out->url);
		out->url = g_strdup(value);
	} else if (strcmp(key, "options") == 0) {
		g_free(out->options);
		out->options = g_strdup(value);
	} else {
		g_free(out->mountpoint);
		out->mountpoint = account_path(value);
		if (!out->mountpoint) {
			config_error(error, c, line,
				     "mountpoint in [%s] must be an absolute "
				     "path or start with ~/",
				     name);
			return -1;
		}
	}
	return 0;
}

static gboolean is_own_key(const char *key)
{
	for (unsigned i = 0; i < G_N_ELEMENTS(own_keys); i++)
		if (strcmp(key, own_keys[i]) == 0)
			return TRUE;
	return FALSE;
}

static int apply_key(const Config *c, const char *name, const char *key,
		     FsOptions *opts, FsConfigAccount *out, GError **error)
{
	g_autofree char *value = g_key_file_get_value(c->kf, name, key, NULL);
	g_autoptr(GError) opt_error = NULL;
	unsigned line = find_line(c->text, name, key);
	int r;

	g_strstrip(value);
	if (!*value) {
		config_error(error, c, line, "%s in [%s] needs a value", key,
			     name);
		return -1;
	}
	if (is_own_key(key))
		return apply_own_key(c, name, key, value, line, out, error);
	r = fs_options_set(opts, key, value, &opt_error);
	if (r == -ENOENT) {
		unknown_key(error, c, line, name, key);
		return -1;
	}
	if (r < 0) {
		config_error(error, c, line, "bad value for %s in [%s]: %s",
			     key, name, opt_error->message);
		return -1;
	}
	return 0;
}

static void unknown_account(GError **error, const Config *c, const char *name)
{
	g_auto(GStrv) groups = g_key_file_get_groups(c->kf, NULL);
	g_autofree char *known = g_strjoinv(", ", groups);

	config_error(error, c, 0, "no account \"%s\"; %s%s", name,
		     groups[0] ? "the accounts are: " : "it has no accounts",
		     known);
}

int fs_config_load_account(const char *path, const char *name, FsOptions *opts,
			   FsConfigAccount *out, GError **error)
{
	g_autoptr(Config) c = config_load(path, error);
	g_auto(GStrv) keys = NULL;

	if (!c)
		return -1;
	if (!g_key_file_has_group(c->kf, name)) {
		unknown_account(error, c, name);
		return -1;
	}
	if (!valid_account_name(name)) {
		config_error(error, c, find_line(c->text, name, NULL),
			     "account name [%s]: use letters, digits and "
			     "'.', '_', '-', '@', '+'",
			     name);
		return -1;
	}
	keys = g_key_file_get_keys(c->kf, name, NULL, NULL);
	for (unsigned i = 0; keys && keys[i]; i++)
		if (apply_key(c, name, keys[i], opts, out, error) < 0)
			return -1;
	if (!out->url) {
		config_error(error, c, find_line(c->text, name, NULL),
			     "account [%s] has no url", name);
		return -1;
	}
	return 0;
}

void fs_config_account_clear(FsConfigAccount *acct)
{
	g_clear_pointer(&acct->url, g_free);
	g_clear_pointer(&acct->mountpoint, g_free);
	g_clear_pointer(&acct->options, g_free);
}

static char *unescape_mountinfo(const char *s)
{
	GString *out = g_string_new(NULL);

	for (; *s; s++) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' &&
		    s[2] <= '7' && s[3] >= '0' && s[3] <= '7') {
			g_string_append_c(out, (char)((s[1] - '0') * 64 +
						      (s[2] - '0') * 8 +
						      (s[3] - '0')));
			s += 3;
		} else {
			g_string_append_c(out, *s);
		}
	}
	return g_string_free(out, FALSE);
}

/* Where an imapfs mount of this account is: its fsname is the account's
 * name (mounted by name) or its URL (mounted by URL). NULL when none. */
static char *find_mount(const char *mountinfo, const char *name,
			const char *url)
{
	g_auto(GStrv) lines = g_strsplit(mountinfo, "\n", -1);
	char *found = NULL;

	for (unsigned i = 0; lines[i]; i++) {
		g_auto(GStrv) f = g_strsplit(lines[i], " ", -1);
		guint n = g_strv_length(f), sep;

		for (sep = 6; sep < n && strcmp(f[sep], "-") != 0; sep++)
			;
		if (sep + 2 >= n || strcmp(f[sep + 1], "fuse.imapfs") != 0)
			continue;
		g_autofree char *src = unescape_mountinfo(f[sep + 2]);

		if (strcmp(src, name) == 0 || (url && strcmp(src, url) == 0)) {
			g_free(found); /* the last one is on top */
			found = unescape_mountinfo(f[4]);
		}
	}
	return found;
}

static void print_account(const Config *c, const char *name, int width,
			  const char *mountinfo)
{
	g_autofree char *url = g_key_file_get_value(c->kf, name, "url", NULL);
	g_autofree char *mp =
	    g_key_file_get_value(c->kf, name, "mountpoint", NULL);
	g_autofree char *canon = NULL;
	g_autofree char *where = NULL;
	ImapUrl parsed = { 0 };

	if (url && imap_url_parse(g_strstrip(url), &parsed, NULL) == 0) {
		canon = imap_url_to_string(&parsed);
		imap_url_clear(&parsed);
	}
	where = find_mount(mountinfo, name, canon);
	if (where)
		printf("%-*s  mounted on %s\n", width, name, where);
	else
		printf("%-*s  not mounted (mountpoint: %s)\n", width, name,
		       mp ? g_strstrip(mp) : "none");
}

int fs_config_print_accounts(const char *path, GError **error)
{
	g_autoptr(Config) c = config_load(path, error);
	g_auto(GStrv) groups = NULL;
	g_autofree char *mountinfo = NULL;
	int width = 0;

	if (!c)
		return -1;
	if (!g_file_get_contents("/proc/self/mountinfo", &mountinfo, NULL,
				 NULL))
		mountinfo = g_strdup("");
	groups = g_key_file_get_groups(c->kf, NULL);
	for (unsigned i = 0; groups[i]; i++)
		width = MAX(width, (int)strlen(groups[i]));
	for (unsigned i = 0; groups[i]; i++)
		print_account(c, groups[i], width, mountinfo);
	return 0;
}
