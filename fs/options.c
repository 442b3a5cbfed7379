/* fs/options.c: the command line, -o mount options and password sources.
 *
 * FsOptions owns every string in it and its fuse_args; fs_options_clear()
 * frees them and may be called again on a cleared struct. Parsing keeps no
 * global state. The password prompt installs process-wide signal handlers
 * for its duration so that the terminal's echo comes back whatever happens:
 * ask before starting threads. Every buffer that held a password is wiped
 * before it is freed, and the password never goes into fuse_args.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* ppoll */
#endif
#ifndef FUSE_USE_VERSION
#define FUSE_USE_VERSION 312
#endif
#ifndef IMAPFS_VERSION
#define IMAPFS_VERSION "0.0.0"
#endif

#include "fs/options.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <fuse_opt.h>
#include <grp.h>
#include <pwd.h>
#include <openssl/crypto.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

/* Room for a long OAuth token; a longer first line is refused. */
#define OPTIONS_PASSWORD_MAX 16384

#define OPTIONS_URL_FORMS                                                      \
	"expected imaps://USER@HOST[:PORT] or imap://USER@HOST[:PORT]"

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
};

struct opt_spec {
	const char *name; /* long name, with '-' */
	enum opt_id id;
	bool takes_value;
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
};

static void opts_error(GError **error, const char *fmt, ...)
    G_GNUC_PRINTF(2, 3);

static void opts_error(GError **error, const char *fmt, ...)
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
		const char *home = g_getenv("HOME");

		if (!home || !*home)
			home = g_get_home_dir();
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
		opts_error(error, "--%s needs a value", spec->name);
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
	case OPT_CONNECTIONS:
		if (!parse_uint(value, 1, 64, &opts->connections)) {
			opts_error(error,
				   "--connections must be between 1 and 64");
			return -1;
		}
		return 0;
	case OPT_TIMEOUT:
		if (!parse_uint(value, 1, 3600, &opts->timeout)) {
			opts_error(error,
				   "--timeout must be between 1 and 3600");
			return -1;
		}
		return 0;
	case OPT_INSECURE:
		opts->insecure = true;
		return 0;
	case OPT_XATTR:
		opts->xattr = true;
		return 0;
	case OPT_UMASK:
		if (!parse_octal_mask(value, &opts->umask)) {
			opts_error(error, "umask must be octal, 000 to 777, "
					  "such as 077 or 022");
			return -1;
		}
		return 0;
	case OPT_UID:
	case OPT_GID: {
		bool group = spec->id == OPT_GID;
		unsigned id;

		if (!parse_owner(value, group, &id)) {
			opts_error(error, "%s: no such %s: '%s'", spec->name,
				   group ? "group" : "user", value);
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
			opts_error(error,
				   "--cache-size must be a size such as 500M, "
				   "2G or 0 (no limit)");
			return -1;
		}
		return 0;
	case OPT_POLL_INTERVAL:
		if (!parse_uint(value, 5, 86400, &opts->poll_interval)) {
			opts_error(error, "--poll-interval must be between 5 "
					  "and 86400 seconds");
			return -1;
		}
		return 0;
	}
	return 0;
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

	if (spec) {
		if (spec->takes_value && !eq) {
			opts_error(error, "option '%.*s' needs a value",
				   (int)nlen, opt);
			return -1;
		}
		if (!spec->takes_value && eq) {
			opts_error(error, "option '%.*s' takes no value",
				   (int)nlen, opt);
			return -1;
		}
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

static void print_help(const char *argv0)
{
	g_autofree char *prog = g_path_get_basename(argv0);

	printf("usage: %s [options] URL MOUNTPOINT\n"
	       "\n"
	       "Mount an IMAP account read-only: folders are directories,\n"
	       "messages are \"<UID> <subject>.eml\" files.\n"
	       "\n"
	       "URL:\n"
	       "    imaps://USER@HOST[:PORT]  implicit TLS (default port 993)\n"
	       "    imap://USER@HOST[:PORT]   STARTTLS, required (default "
	       "port 143)\n"
	       "    Percent-encode '@' in USER: imaps://me%%40example.org@"
	       "mail.example.org\n"
	       "\n"
	       "Options:\n"
	       "    -h   --help              print this help and exit\n"
	       "    -V   --version           print versions and exit\n"
	       "    -f                       stay in the foreground\n"
	       "    -d                       debug log on stderr (implies -f)\n"
	       "    -o OPT[,OPT...]          mount options, see below\n"
	       "    --password-command=CMD   run CMD with /bin/sh -c; the "
	       "password is\n"
	       "                             the first line of its output\n"
	       "    --password-file=FILE     the password is the first line "
	       "of FILE\n"
	       "    --cafile=FILE            trust the CA certificates in "
	       "FILE (PEM)\n"
	       "    --cache-dir=DIR          cache directory (default:\n"
	       "                             $XDG_CACHE_HOME/imapfs or "
	       "~/.cache/imapfs)\n"
	       "    --connections=N          connections to the server, "
	       "1..64 (default: 4)\n"
	       "    --timeout=SECONDS        how long a read waits for a "
	       "server that makes\n"
	       "                             no progress, 1..3600 (default: "
	       "10); a connection\n"
	       "                             silent for half of it is "
	       "replaced\n"
	       "    --insecure               do not verify the server's "
	       "certificate\n"
	       "                             or host name\n"
	       "    --cache-size=SIZE        keep at most SIZE of message "
	       "bodies (K, M, G;\n"
	       "                             least recently read go first; "
	       "default: 0,\n"
	       "                             no limit)\n"
	       "    --poll-interval=SECONDS  how often folders are checked "
	       "for new and\n"
	       "                             deleted mail (default: 60)\n"
	       "    --xattr                  offer user.imapfs.* extended "
	       "attributes\n"
	       "                             (folder, uid, uidvalidity); off "
	       "by default\n"
	       "                             because it costs ls -l two "
	       "round trips a file\n"
	       "    --umask=NNN              permission bits to clear, octal "
	       "(default: 077:\n"
	       "                             messages 0600, folders 0700, "
	       "owner only;\n"
	       "                             022 gives 0644 and 0755)\n"
	       "    --uid=USER --gid=GROUP   owner and group of every file, "
	       "a number or\n"
	       "                             a name (default: the mounting "
	       "user's)\n"
	       "\n"
	       "Every long option also works as -o NAME=VALUE (-o insecure),\n"
	       "with '-' or '_' in NAME: -o password_file=FILE.\n"
	       "Other -o options go to FUSE (allow_other, max_read=N, ...;\n"
	       "see mount.fuse3(8)). The mount is always ro,noatime,\n"
	       "default_permissions; _netdev, nofail, noauto, auto, user,\n"
	       "users, rw and defaults are ignored. With allow_other, the\n"
	       "modes above decide who else may read the mail.\n"
	       "\n"
	       "The password comes from, in this order: --password-command,\n"
	       "--password-file, the IMAPFS_PASSWORD environment variable,\n"
	       "or a prompt on the terminal.\n"
	       "\n"
	       "/etc/fstab example (one line):\n"
	       "    imaps://me@mail.example.org /home/me/mail fuse.imapfs\n"
	       "        noauto,user,_netdev,password_file=/home/me/.imapfs-pw "
	       "0 0\n"
	       "\n"
	       "See imapfs(1).\n",
	       prog);
}

static void print_version(void)
{
	printf("imapfs %s\n"
	       "libfuse %s\n"
	       "%s\n"
	       "GLib %u.%u.%u\n",
	       IMAPFS_VERSION, fuse_pkgversion(),
	       OpenSSL_version(OPENSSL_VERSION), glib_major_version,
	       glib_minor_version, glib_micro_version);
}

/* Percent-decode USER. Control characters would let a user name break an
 * IMAP command line, so they are refused. */
static char *decode_user(const char *raw, size_t len, const char *url,
			 GError **error)
{
	g_autoptr(GString) out = g_string_sized_new(len);

	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)raw[i];

		if (c == '%') {
			int hi = -1, lo = -1;

			if (i + 2 < len) {
				hi = g_ascii_xdigit_value(raw[i + 1]);
				lo = g_ascii_xdigit_value(raw[i + 2]);
			}

			if (hi < 0 || lo < 0) {
				opts_error(error,
					   "invalid URL '%s': bad "
					   "percent-encoding in USER",
					   url);
				return NULL;
			}
			c = (unsigned char)(hi << 4 | lo);
			i += 2;
		} else if (c == '/' || c == '?' || c == '#' || c == ' ') {
			opts_error(error, "invalid URL '%s': %s", url,
				   OPTIONS_URL_FORMS);
			return NULL;
		}
		if (c < 0x20 || c == 0x7f) {
			opts_error(error,
				   "invalid URL '%s': control character in "
				   "USER",
				   url);
			return NULL;
		}
		g_string_append_c(out, (char)c);
	}
	return g_string_free(g_steal_pointer(&out), FALSE);
}

/* An IPv6 literal, optionally with a zone ("fe80::1%25eth0"). Returns the
 * host without brackets and with the zone decoded, or NULL. */
static char *parse_ipv6(const char *s, size_t len)
{
	g_autofree char *lit = g_strndup(s, len);
	char *zone = strstr(lit, "%25");
	struct in6_addr addr;

	if (zone) {
		*zone = '\0';
		zone += 3;
		if (!*zone)
			return NULL;
		for (const char *z = zone; *z; z++)
			if (!g_ascii_isalnum(*z) && !strchr("-._~", *z))
				return NULL;
	}
	if (inet_pton(AF_INET6, lit, &addr) != 1)
		return NULL;
	g_autofree char *lower = g_ascii_strdown(lit, -1);

	return zone ? g_strconcat(lower, "%", zone, NULL) : g_strdup(lower);
}

static bool host_char_ok(unsigned char c)
{
	return g_ascii_isalnum(c) || c == '-' || c == '.' || c == '_' ||
	       c >= 0x80;
}

/* The URL as shown in a message: on one line. */
static char *url_for_message(const char *url)
{
	for (const char *c = url; *c; c++)
		if ((unsigned char)*c < 0x20 || *c == 0x7f)
			return g_strescape(url, NULL);
	return g_strdup(url);
}

/* Fills implicit_tls, user, host and port; returns the normalised URL for
 * fsname: scheme://user@host:port, user percent-encoded so that it holds no
 * ',' (fuse_opt's separator). Never puts a password in a message. */
static char *parse_url(FsOptions *opts, const char *url, GError **error)
{
	g_autofree char *shown_url = url_for_message(url);
	const char *rest = strstr(url, "://");
	const char *at, *host, *end, *p;
	size_t scheme_len;

	/* Refuse a password before anything that could echo the URL. */
	rest = rest ? rest + 3 : url;
	at = strrchr(rest, '@');
	if (at && memchr(rest, ':', (size_t)(at - rest))) {
		opts_error(error, "the URL must not contain a password: use "
				  "--password-command or --password-file");
		return NULL;
	}

	if (g_ascii_strncasecmp(url, "imaps://", 8) == 0) {
		opts->implicit_tls = true;
		opts->port = 993;
		scheme_len = 8;
	} else if (g_ascii_strncasecmp(url, "imap://", 7) == 0) {
		opts->implicit_tls = false;
		opts->port = 143;
		scheme_len = 7;
	} else {
		opts_error(error, "invalid URL '%s': %s", shown_url,
			   OPTIONS_URL_FORMS);
		return NULL;
	}
	rest = url + scheme_len;

	if (!at || at == rest) {
		opts_error(error, "invalid URL '%s': missing USER (%s)",
			   shown_url, OPTIONS_URL_FORMS);
		return NULL;
	}
	for (p = rest; p + 6 <= at; p++) {
		if (g_ascii_strncasecmp(p, ";auth=", 6) == 0) {
			opts_error(error,
				   "invalid URL '%s': ';AUTH=' is not "
				   "supported",
				   shown_url);
			return NULL;
		}
	}
	opts->user = decode_user(rest, (size_t)(at - rest), shown_url, error);
	if (!opts->user)
		return NULL;

	host = at + 1;
	if (*host == '[') {
		const char *close = strchr(host, ']');

		if (!close || !(opts->host = parse_ipv6(
				    host + 1, (size_t)(close - host - 1)))) {
			opts_error(error, "invalid URL '%s': bad IPv6 address",
				   shown_url);
			return NULL;
		}
		p = close + 1;
	} else {
		for (p = host; host_char_ok((unsigned char)*p); p++)
			;
		if (p == host) {
			opts_error(error, "invalid URL '%s': missing HOST (%s)",
				   shown_url, OPTIONS_URL_FORMS);
			return NULL;
		}
		opts->host = g_ascii_strdown(host, p - host);
	}

	if (*p == ':') {
		unsigned port;

		end = p + 1 + strcspn(p + 1, "/?#");
		g_autofree char *digits = g_strndup(p + 1, end - p - 1);

		if (!parse_uint(digits, 1, 65535, &port)) {
			opts_error(error,
				   "invalid URL '%s': port must be between 1 "
				   "and 65535",
				   shown_url);
			return NULL;
		}
		opts->port = (uint16_t)port;
		p = end;
	}
	if (*p && !strchr("/?#", *p)) {
		opts_error(error, "invalid URL '%s': bad character in HOST",
			   shown_url);
		return NULL;
	}
	if (*p == '/')
		p++;
	if (*p) {
		opts_error(error,
			   "invalid URL '%s': nothing may follow HOST[:PORT] "
			   "(%s)",
			   shown_url, OPTIONS_URL_FORMS);
		return NULL;
	}

	g_autofree char *user =
	    g_uri_escape_string(opts->user, "!$&'()*+=", FALSE);
	g_autofree char *zone_host = NULL;
	const char *shown = opts->host;

	if (strchr(opts->host, ':')) {
		g_auto(GStrv) parts = g_strsplit(opts->host, "%", 2);

		zone_host =
		    parts[1] ? g_strdup_printf("[%s%%25%s]", parts[0], parts[1])
			     : g_strdup_printf("[%s]", parts[0]);
		shown = zone_host;
	}
	return g_strdup_printf("%s://%s@%s:%u",
			       opts->implicit_tls ? "imaps" : "imap", user,
			       shown, opts->port);
}

static int check_mountpoint(FsOptions *opts, const char *mp, GError **error)
{
	char *real = realpath(mp, NULL);
	struct stat st;
	int e;

	if (!real) {
		e = errno;
		opts_error(error, "mountpoint %s: %s%s", mp, g_strerror(e),
			   e == ENOTCONN ? " (a stale mount? try "
					   "fusermount3 -u)"
					 : "");
		return -1;
	}
	e = stat(real, &st) < 0 ? errno : S_ISDIR(st.st_mode) ? 0 : ENOTDIR;
	if (e) {
		free(real);
		opts_error(error, "mountpoint %s: %s", mp, g_strerror(e));
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
	home = g_getenv("HOME");
	if (!home || !*home)
		home = g_get_home_dir();
	g_autofree char *dir = g_build_filename(home, ".cache", "imapfs", NULL);

	return make_absolute(dir);
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
		opts_error(error, "out of memory");
		return -1;
	}
	return 0;
}

/* The loop over argv; options may come before or after the positionals. */
static int parse_argv(int argc, char **argv, FsOptions *opts,
		      struct parse_state *st, const char *prog, GError **error)
{
	bool only_positionals = false;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (only_positionals || a[0] != '-' || a[1] == '\0') {
			if (!st->url) {
				st->url = a;
			} else if (!st->mountpoint) {
				st->mountpoint = a;
			} else {
				opts_error(error, "unexpected argument '%s'",
					   a);
				return -1;
			}
		} else if (strcmp(a, "--") == 0) {
			only_positionals = true;
		} else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			print_help(prog);
			return FS_OPTIONS_EXIT_OK;
		} else if (strcmp(a, "-V") == 0 ||
			   strcmp(a, "--version") == 0) {
			print_version();
			return FS_OPTIONS_EXIT_OK;
		} else if (strcmp(a, "-f") == 0) {
			opts->foreground = true;
		} else if (strcmp(a, "-d") == 0) {
			opts->debug = true;
		} else if (strncmp(a, "-o", 2) == 0) {
			const char *list = a[2] ? a + 2 : NULL;

			if (!list && i + 1 < argc)
				list = argv[++i];
			if (!list) {
				opts_error(error, "option '-o' needs a value");
				return -1;
			}
			if (mount_opt_list(opts, st, list, error) < 0)
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
				opts_error(error, "unknown option '--%.*s'",
					   (int)nlen, name);
				return -1;
			}
			if (!spec->takes_value && value) {
				opts_error(error,
					   "option '--%s' takes no value",
					   spec->name);
				return -1;
			}
			if (spec->takes_value && !value) {
				if (i + 1 >= argc) {
					opts_error(error,
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
			opts_error(error, "unknown option '%.2s'", a);
			return -1;
		}
	}
	return FS_OPTIONS_RUN;
}

int fs_options_parse(int argc, char **argv, FsOptions *opts, GError **error)
{
	const char *prog = argc > 0 && argv[0] ? argv[0] : "imapfs";
	struct parse_state st = { 0 };
	g_autofree char *fsname = NULL;
	int r;

	memset(opts, 0, sizeof(*opts));
	opts->connections = 4;
	opts->timeout = 10;
	opts->poll_interval = 60;
	opts->umask = 077;
	opts->uid = getuid();
	opts->gid = getgid();
	st.fuse_opts = g_ptr_array_new_with_free_func(g_free);

	r = parse_argv(argc, argv, opts, &st, prog, error);
	if (r != FS_OPTIONS_RUN)
		goto out;
	r = -1;
	if (!st.url) {
		opts_error(error, "missing URL");
		goto out;
	}
	if (!st.mountpoint) {
		opts_error(error, "missing MOUNTPOINT");
		goto out;
	}
	fsname = parse_url(opts, st.url, error);
	if (!fsname)
		goto out;
	opts->url = g_strdup(st.url);
	if (check_mountpoint(opts, st.mountpoint, error) < 0)
		goto out;
	if (opts->cafile && access(opts->cafile, R_OK) < 0) {
		int e = errno;

		opts_error(error, "cafile %s: %s", opts->cafile, g_strerror(e));
		goto out;
	}
	if (!opts->cache_dir)
		opts->cache_dir = default_cache_dir();
	if (opts->debug)
		opts->foreground = true;
	if (build_fuse_args(opts, prog, &st, fsname, error) < 0)
		goto out;
	r = FS_OPTIONS_RUN;
out:
	g_ptr_array_unref(st.fuse_opts);
	if (r != FS_OPTIONS_RUN)
		fs_options_clear(opts); /* nothing for the caller to free */
	return r;
}

void fs_options_clear(FsOptions *opts)
{
	g_clear_pointer(&opts->url, g_free);
	g_clear_pointer(&opts->user, g_free);
	g_clear_pointer(&opts->host, g_free);
	g_clear_pointer(&opts->mountpoint, g_free);
	g_clear_pointer(&opts->password_command, g_free);
	g_clear_pointer(&opts->password_file, g_free);
	g_clear_pointer(&opts->cafile, g_free);
	g_clear_pointer(&opts->cache_dir, g_free);
	fuse_opt_free_args(&opts->fuse_args);
	memset(&opts->fuse_args, 0, sizeof(opts->fuse_args));
}

/* ---- password ---- */

/* Reads the first line of fd into buf (size OPTIONS_PASSWORD_MAX), without
 * its line end. With drain, reads on to EOF so that the writer never blocks,
 * or, when exit_fd (a pidfd) says the writer has exited, only to the end of
 * what it left in the pipe: a process it left behind may hold the pipe open.
 * Returns the line length, or -errno (-E2BIG: line too long). */
static ssize_t read_first_line(int fd, char *buf, bool drain, int exit_fd)
{
	size_t n = 0;
	bool eol = false, too_long = false, exited = false;
	char scratch[512];

	for (;;) {
		char *dst = eol || too_long ? scratch : buf + n;
		size_t room = eol || too_long ? sizeof(scratch)
					      : OPTIONS_PASSWORD_MAX - 1 - n;
		ssize_t got;

		if (exit_fd >= 0 && !exited) {
			struct pollfd pfd[2] = { { .fd = fd, .events = POLLIN },
						 { .fd = exit_fd,
						   .events = POLLIN } };

			int pr = poll(pfd, 2, -1);

			if (pr < 0 && errno == EINTR)
				continue;
			if (pr < 0) {
				int e = errno;

				explicit_bzero(scratch, sizeof(scratch));
				return -e;
			}
			if (!pfd[0].revents && pfd[1].revents) {
				int fl = fcntl(fd, F_GETFL);

				exited = true;
				fcntl(fd, F_SETFL, fl | O_NONBLOCK);
			}
		}
		got = read(fd, dst, room);
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0 && exited && errno == EAGAIN)
			break;
		if (got < 0) {
			int e = errno;

			explicit_bzero(scratch, sizeof(scratch));
			return -e;
		}
		if (got == 0)
			break;
		if (!eol && !too_long) {
			char *nl = memchr(dst, '\n', (size_t)got);

			if (nl) {
				explicit_bzero(nl, (size_t)(dst + got - nl));
				n = (size_t)(nl - buf);
				eol = true;
			} else {
				n += (size_t)got;
				too_long = n == OPTIONS_PASSWORD_MAX - 1;
			}
		}
		if ((eol || too_long) && !drain)
			break;
	}
	explicit_bzero(scratch, sizeof(scratch));
	if (too_long)
		return -E2BIG;
	return (ssize_t)n;
}

/* Copies the line (minus trailing CR/LF) into an exact-size string after
 * the checks every source shares. */
static char *password_finish(const char *line, size_t len, const char *source,
			     GError **error)
{
	char *pw;

	while (len > 0 && (line[len - 1] == '\r' || line[len - 1] == '\n'))
		len--;
	if (len == 0) {
		opts_error(error, "empty password from %s", source);
		return NULL;
	}
	if (memchr(line, '\0', len) || memchr(line, '\r', len) ||
	    memchr(line, '\n', len)) {
		opts_error(error,
			   "the password from %s contains a NUL or line break",
			   source);
		return NULL;
	}
	pw = g_malloc(len + 1);
	memcpy(pw, line, len);
	pw[len] = '\0';
	return pw;
}

static char *password_from_command(const char *cmd, GError **error)
{
	const char *argv[] = { "/bin/sh", "-c", cmd, NULL };
	g_autoptr(GError) err = NULL;
	char *buf, *pw = NULL;
	GPid pid;
	int out_fd, pidfd = -1, status = 0, wait_err = 0;
	bool early, our_sigpipe;
	ssize_t len;

	if (!g_spawn_async_with_pipes(
		NULL, (char **)argv, NULL,
		G_SPAWN_DO_NOT_REAP_CHILD | G_SPAWN_CHILD_INHERITS_STDIN, NULL,
		NULL, &pid, NULL, &out_fd, NULL, &err)) {
		opts_error(error, "password command '%s': %s", cmd,
			   err->message);
		return NULL;
	}
#ifdef SYS_pidfd_open
	pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
#endif
	/* Without a pidfd (old kernel, valgrind) we cannot tell when the
	 * command is done, so stop at the first line; more output then dies
	 * of SIGPIPE, which is not the command's failure. */
	early = pidfd < 0;
	buf = g_malloc(OPTIONS_PASSWORD_MAX);
	len = read_first_line(out_fd, buf, !early, pidfd);
	close(out_fd);
	if (pidfd >= 0)
		close(pidfd);
	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR) {
			wait_err = errno;
			break;
		}
	}
	g_spawn_close_pid(pid);
	our_sigpipe =
	    early && len != 0 &&
	    ((WIFSIGNALED(status) && WTERMSIG(status) == SIGPIPE) ||
	     (WIFEXITED(status) && WEXITSTATUS(status) == 128 + SIGPIPE));

	if (wait_err)
		opts_error(error, "password command '%s': waitpid: %s", cmd,
			   g_strerror(wait_err));
	else if (!our_sigpipe && WIFEXITED(status) && WEXITSTATUS(status))
		opts_error(error, "password command '%s' exited with status %d",
			   cmd, WEXITSTATUS(status));
	else if (!our_sigpipe && WIFSIGNALED(status))
		opts_error(error,
			   "password command '%s' was killed by signal %d", cmd,
			   WTERMSIG(status));
	else if (len == -E2BIG)
		opts_error(error,
			   "password command '%s': first line is longer than "
			   "%d bytes",
			   cmd, OPTIONS_PASSWORD_MAX - 1);
	else if (len < 0)
		opts_error(error, "password command '%s': %s", cmd,
			   g_strerror((int)-len));
	else
		pw = password_finish(buf, (size_t)len, "the password command",
				     error);
	explicit_bzero(buf, OPTIONS_PASSWORD_MAX);
	g_free(buf);
	return pw;
}

static char *password_from_file(const char *path, GError **error)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	g_autofree char *source = NULL;
	struct stat st;
	char *buf, *pw = NULL;
	ssize_t len;

	if (fd < 0) {
		int e = errno;

		g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(e),
			    "password file %s: %s", path, g_strerror(e));
		return NULL;
	}
	if (fstat(fd, &st) == 0 &&
	    (st.st_mode & (S_IRGRP | S_IWGRP | S_IROTH | S_IWOTH)))
		fprintf(stderr,
			"imapfs: warning: password file %s is accessible by "
			"other users\n",
			path);
	buf = g_malloc(OPTIONS_PASSWORD_MAX);
	len = read_first_line(fd, buf, false, -1);
	close(fd);
	source = g_strdup_printf("password file %s", path);
	if (len == -E2BIG)
		opts_error(error,
			   "password file %s: first line is longer than %d "
			   "bytes",
			   path, OPTIONS_PASSWORD_MAX - 1);
	else if (len < 0)
		opts_error(error, "password file %s: %s", path,
			   g_strerror((int)-len));
	else
		pw = password_finish(buf, (size_t)len, source, error);
	explicit_bzero(buf, OPTIONS_PASSWORD_MAX);
	g_free(buf);
	return pw;
}

/* Signals that would otherwise leave the terminal without echo. */
static const int prompt_signals[] = {
	SIGALRM, SIGHUP,  SIGINT,  SIGPIPE, SIGQUIT,
	SIGTERM, SIGTSTP, SIGTTIN, SIGTTOU,
};

static volatile sig_atomic_t prompt_signo;

static void prompt_on_signal(int signo)
{
	prompt_signo = signo;
}

/* One prompt with echo off. Returns the line length, -EINTR when a signal
 * arrived (*signo set, terminal already restored), or another -errno.
 * Signals are blocked except inside ppoll(), so none can slip in between
 * the check and the wait. */
static ssize_t prompt_once(int fd, const char *prompt, char *buf, int *signo)
{
	struct sigaction sa = { 0 }, old_sa[G_N_ELEMENTS(prompt_signals)];
	struct termios saved, quiet;
	sigset_t block, old_mask, wait_mask;
	size_t n = 0;
	ssize_t ret = 0;
	bool eol = false;

	*signo = 0;
	prompt_signo = 0;
	sigemptyset(&block);
	for (size_t i = 0; i < G_N_ELEMENTS(prompt_signals); i++)
		sigaddset(&block, prompt_signals[i]);
	sigprocmask(SIG_BLOCK, &block, &old_mask);
	sa.sa_handler = prompt_on_signal; /* no SA_RESTART: wake ppoll */
	sigemptyset(&sa.sa_mask);
	for (size_t i = 0; i < G_N_ELEMENTS(prompt_signals); i++)
		sigaction(prompt_signals[i], &sa, &old_sa[i]);

	if (tcgetattr(fd, &saved) < 0) {
		ret = -errno;
		goto restore_signals;
	}
	quiet = saved;
	quiet.c_lflag &= ~(tcflag_t)(ECHO | ECHOE | ECHOK | ECHONL);
	quiet.c_lflag |= ICANON;
	if (tcsetattr(fd, TCSAFLUSH, &quiet) < 0) {
		ret = -errno;
		goto restore_signals;
	}
	if (write(fd, prompt, strlen(prompt)) < 0) {
		ret = -errno;
		goto restore_tty;
	}

	wait_mask = old_mask;
	for (size_t i = 0; i < G_N_ELEMENTS(prompt_signals); i++)
		sigdelset(&wait_mask, prompt_signals[i]);
	while (!eol) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		char c;
		ssize_t got;

		if (prompt_signo) {
			ret = -EINTR;
			break;
		}
		if (ppoll(&pfd, 1, NULL, &wait_mask) < 0) {
			if (errno == EINTR)
				continue;
			ret = -errno;
			break;
		}
		got = read(fd, &c, 1);
		if (got < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (got < 0) {
			ret = -errno;
			break;
		}
		if (got == 0 || c == '\n') {
			eol = true;
		} else if (n < OPTIONS_PASSWORD_MAX - 1) {
			buf[n++] = c;
		} else {
			ret = -E2BIG; /* read on to the line end */
		}
		c = 0;
	}
	if (ret == 0)
		ret = (ssize_t)n;
	(void)!write(fd, "\n", 1); /* the user's newline was not echoed */
restore_tty:
	while (tcsetattr(fd, TCSAFLUSH, &saved) < 0 && errno == EINTR)
		;
restore_signals:
	for (size_t i = 0; i < G_N_ELEMENTS(prompt_signals); i++)
		sigaction(prompt_signals[i], &old_sa[i], NULL);
	if (ret == -EINTR) {
		*signo = prompt_signo;
		raise(*signo); /* delivered when the mask is restored */
	}
	sigprocmask(SIG_SETMASK, &old_mask, NULL);
	return ret;
}

static char *password_from_tty(const FsOptions *opts, GError **error)
{
	int fd = open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC);
	g_autofree char *prompt = NULL;
	char *buf, *pw = NULL;
	ssize_t len;
	int signo;

	if (fd < 0) {
		opts_error(error,
			   "no password given and no terminal to ask for it: "
			   "use --password-command, --password-file or "
			   "IMAPFS_PASSWORD");
		return NULL;
	}
	prompt =
	    g_strdup_printf("Password for %s@%s: ", opts->user, opts->host);
	buf = g_malloc(OPTIONS_PASSWORD_MAX);
	for (;;) {
		len = prompt_once(fd, prompt, buf, &signo);
		/* Back from a stop (Ctrl-Z): ask again. */
		if (len == -EINTR &&
		    (signo == SIGTSTP || signo == SIGTTIN || signo == SIGTTOU))
			continue;
		break;
	}
	close(fd);
	if (len == -EINTR)
		opts_error(error, "password prompt interrupted");
	else if (len == -E2BIG)
		opts_error(error, "password longer than %d bytes",
			   OPTIONS_PASSWORD_MAX - 1);
	else if (len < 0)
		opts_error(error, "password prompt on /dev/tty: %s",
			   g_strerror((int)-len));
	else
		pw = password_finish(buf, (size_t)len, "the terminal", error);
	explicit_bzero(buf, OPTIONS_PASSWORD_MAX);
	g_free(buf);
	return pw;
}

char *fs_options_get_password(const FsOptions *opts, GError **error)
{
	const char *env;

	if (opts->password_command)
		return password_from_command(opts->password_command, error);
	if (opts->password_file)
		return password_from_file(opts->password_file, error);
	env = g_getenv("IMAPFS_PASSWORD");
	if (env && *env)
		return password_finish(env, strlen(env), "IMAPFS_PASSWORD",
				       error);
	return password_from_tty(opts, error);
}

char *fs_options_reread_password(const FsOptions *opts, GError **error)
{
	if (opts->password_command)
		return password_from_command(opts->password_command, error);
	if (opts->password_file)
		return password_from_file(opts->password_file, error);
	opts_error(error, "the password came from the environment or a "
			  "prompt and cannot be read again");
	return NULL;
}

bool fs_options_can_reread_password(const FsOptions *opts)
{
	return opts->password_command || opts->password_file;
}

void fs_options_free_password(char *password)
{
	if (!password)
		return;
	explicit_bzero(password, strlen(password));
	g_free(password);
}
