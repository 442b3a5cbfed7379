/* tests/unit/test-options.c: command line and -o options (the URL's parser
 * and the password sources have tests of their own: test-url.c,
 * test-password.c). Everything runs in a private temporary directory.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#ifndef FUSE_USE_VERSION
#define FUSE_USE_VERSION 312
#endif
#ifndef IMAPFS_VERSION
#define IMAPFS_VERSION "0.0.0"
#endif

#include "tests/unit/test-util.h"
#include "fs/options.h"
#include "fs/password.h"

#include <errno.h>
#include <fuse_opt.h>
#include <glib/gstdio.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define URL "imaps://me@mail.example.org"
#define OURS "ro,noatime,default_permissions,subtype=imapfs"
#define FSNAME "fsname=imaps://me@mail.example.org:993"
#define SECRET "s3cret-Pw"

static char *tmpdir; /* private, removed at the end */
static char *mnt;    /* tmpdir/mnt, a real directory, canonical */

static char *tmp_path(const char *name)
{
	return g_build_filename(tmpdir, name, NULL);
}

/* What follows the message when arguments are missing. */
#define USAGE                                                                  \
	"\nusage: imapfs [options] URL MOUNTPOINT\n"                           \
	"       imapfs [options] ACCOUNT [MOUNTPOINT]\n"                       \
	"Try 'imapfs --help' for more information."

/* Parse "imapfs" followed by the NULL-terminated arguments. */
static int parse_v(FsOptions *opts, GError **error, va_list ap)
{
	g_autoptr(GPtrArray) argv = g_ptr_array_new();
	const char *a;

	g_ptr_array_add(argv, (char *)"imapfs");
	while ((a = va_arg(ap, const char *)))
		g_ptr_array_add(argv, (char *)a);
	g_ptr_array_add(argv, NULL);
	return fs_options_parse((int)argv->len - 1, (char **)argv->pdata, opts,
				error);
}

static void parse_ok(FsOptions *opts, ...)
{
	GError *error = NULL;
	va_list ap;
	int r;

	va_start(ap, opts);
	r = parse_v(opts, &error, ap);
	va_end(ap);
	g_assert_no_error(error);
	g_assert_cmpint(r, ==, FS_OPTIONS_RUN);
}

/* Expects failure with exactly msg; the struct must come back cleared. */
static void parse_fails(const char *msg, ...)
{
	FsOptions opts;
	GError *error = NULL;
	va_list ap;
	int r;

	va_start(ap, msg);
	r = parse_v(&opts, &error, ap);
	va_end(ap);
	g_assert_cmpint(r, ==, -1);
	g_assert_nonnull(error);
	g_assert_cmpstr(error->message, ==, msg);
	g_assert_null(opts.url);
	g_assert_null(opts.fuse_args.argv);
	g_error_free(error);
	fs_options_clear(&opts); /* a second clear is harmless */
}

static char *joined_fuse_args(const FsOptions *opts)
{
	g_autoptr(GString) s = g_string_new(NULL);

	for (int i = 0; i < opts->fuse_args.argc; i++)
		g_string_append_printf(s, "%s%s", i ? "|" : "",
				       opts->fuse_args.argv[i]);
	return g_string_free(g_steal_pointer(&s), FALSE);
}

/* The URL's parser has tests of its own (test-url.c): here, only that
 * its result and its messages come through. */
static void test_url(void)
{
	static const struct {
		const char *url;
		bool tls;
		const char *user, *host;
		unsigned port;
		const char *fsname;
	} cases[] = {
		{ "IMAP://me@Mail.Example.ORG:1143/", false, "me",
		  "mail.example.org", 1143, "imap://me@mail.example.org:1143" },
		/* No raw ',' may reach fsname. */
		{ "imaps://a%2cb%20c@h", true, "a,b c", "h", 993,
		  "imaps://a%2Cb%20c@h:993" },
		{ "imap://u@[fe80::1%25eth0]/", false, "u", "fe80::1%eth0", 143,
		  "imap://u@[fe80::1%25eth0]:143" },
	};

	for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
		FsOptions opts;
		g_autofree char *args = NULL, *want = NULL;

		parse_ok(&opts, cases[i].url, mnt, NULL);
		g_assert_cmpstr(opts.url, ==, cases[i].url);
		g_assert_cmpint(opts.server.implicit_tls, ==, cases[i].tls);
		g_assert_cmpstr(opts.server.user, ==, cases[i].user);
		g_assert_cmpstr(opts.server.host, ==, cases[i].host);
		g_assert_cmpuint(opts.server.port, ==, cases[i].port);
		args = joined_fuse_args(&opts);
		want = g_strdup_printf("imapfs|-o|" OURS ",fsname=%s",
				       cases[i].fsname);
		g_assert_cmpstr(args, ==, want);
		fs_options_clear(&opts);
	}
	parse_fails("invalid URL 'imaps://me\\n@h\\n': control character "
		    "in USER",
		    "imaps://me\n@h\n", mnt, NULL);
	parse_fails("the URL must not contain a password: use "
		    "--password-command or --password-file",
		    "imaps://me:" SECRET "@h", mnt, NULL);
}

static void test_option_forms(void)
{
	static const char *const forms[][4] = {
		{ "--password-file=/p", URL, NULL, NULL },
		{ "--password-file", "/p", URL, NULL },
		{ "--password_file=/p", URL, NULL, NULL },
		{ "-o", "password_file=/p", URL, NULL },
		{ "-o", "password-file=/p", URL, NULL },
		{ "-opassword_file=/p", URL, NULL, NULL },
		{ URL, "MNT", "-o", "password_file=/p" },
		{ URL, "MNT", "--password-file", "/p" },
		{ URL, "MNT", "-o", "rw,password_file=/p,_netdev" },
	};

	for (size_t i = 0; i < G_N_ELEMENTS(forms); i++) {
		const char *argv[7] = { "imapfs" };
		int argc = 1;
		bool have_mnt = false;
		FsOptions opts;
		GError *error = NULL;

		for (int j = 0; j < 4 && forms[i][j]; j++) {
			have_mnt |= strcmp(forms[i][j], "MNT") == 0;
			argv[argc++] =
			    strcmp(forms[i][j], "MNT") == 0 ? mnt : forms[i][j];
		}
		if (!have_mnt)
			argv[argc++] = mnt;
		g_assert_cmpint(
		    fs_options_parse(argc, (char **)argv, &opts, &error), ==,
		    FS_OPTIONS_RUN);
		g_assert_no_error(error);
		g_assert_cmpstr(opts.password_file, ==, "/p");
		g_assert_cmpstr(opts.url, ==, URL);
		g_assert_cmpstr(opts.mountpoint, ==, mnt);
		fs_options_clear(&opts);
	}
}

static void test_option_values(void)
{
	g_autofree char *ca = test_write_file(tmpdir, "ca.pem", "x", 0644);
	g_autofree char *cwd = g_get_current_dir();
	g_autofree char *rel_cache = g_build_filename(cwd, "rel/cache", NULL);
	g_autofree char *rel_pw = g_build_filename(cwd, "pw.txt", NULL);
	g_autofree char *ca_opt = g_strconcat("cafile=", ca, NULL);
	FsOptions opts;

	parse_ok(&opts, "--connections=8", "--timeout", "30", "--insecure",
		 "--cafile", ca, "--cache-dir=rel/cache",
		 "--password-command=printf x", "-f", URL, mnt, NULL);
	g_assert_cmpuint(opts.connections, ==, 8);
	g_assert_cmpuint(opts.timeout, ==, 30);
	g_assert_true(opts.insecure);
	g_assert_cmpstr(opts.cafile, ==, ca);
	g_assert_cmpstr(opts.cache_dir, ==, rel_cache);
	g_assert_cmpstr(opts.password_command, ==, "printf x");
	g_assert_true(opts.foreground);
	g_assert_false(opts.debug);
	fs_options_clear(&opts);

	/* The same through -o, as /etc/fstab would give them. '\,' is how
	 * fuse_opt escapes a comma inside a value. */
	parse_ok(&opts, URL, mnt, "-o",
		 "connections=16,timeout=3600,insecure,cache_dir=rel/cache",
		 "-o", ca_opt, "-o", "password_command=printf a\\,b", "-o",
		 "password_file=pw.txt", NULL);
	g_assert_cmpuint(opts.connections, ==, 16);
	g_assert_cmpuint(opts.timeout, ==, 3600);
	g_assert_true(opts.insecure);
	g_assert_cmpstr(opts.cafile, ==, ca);
	g_assert_cmpstr(opts.cache_dir, ==, rel_cache);
	g_assert_cmpstr(opts.password_command, ==, "printf a,b");
	g_assert_cmpstr(opts.password_file, ==, rel_pw);
	fs_options_clear(&opts);

	/* "~/" is expanded for fstab, where no shell does it. */
	g_setenv("HOME", "/home/tester", TRUE);
	parse_ok(&opts, URL, mnt, "-o", "cache_dir=~/c,password_file=~/p",
		 NULL);
	g_assert_cmpstr(opts.cache_dir, ==, "/home/tester/c");
	g_assert_cmpstr(opts.password_file, ==, "/home/tester/p");
	fs_options_clear(&opts);

	/* A later value wins. */
	parse_ok(&opts, "--connections=2", URL, mnt, "-o", "connections=3",
		 NULL);
	g_assert_cmpuint(opts.connections, ==, 3);
	fs_options_clear(&opts);
}

static void test_defaults(void)
{
	g_autofree char *cwd = g_get_current_dir();
	FsOptions opts;

	g_setenv("XDG_CACHE_HOME", "/var/tmp/xdg", TRUE);
	parse_ok(&opts, URL, mnt, NULL);
	g_assert_cmpuint(opts.connections, ==, 4);
	g_assert_cmpuint(opts.timeout, ==, 10);
	g_assert_false(opts.insecure);
	g_assert_false(opts.foreground);
	g_assert_false(opts.debug);
	g_assert_null(opts.password_command);
	g_assert_null(opts.password_file);
	g_assert_null(opts.cafile);
	g_assert_cmpstr(opts.cache_dir, ==, "/var/tmp/xdg/imapfs");
	fs_options_clear(&opts);

	/* A relative XDG_CACHE_HOME is ignored, as the XDG spec says. */
	g_setenv("HOME", "/home/tester", TRUE);
	g_setenv("XDG_CACHE_HOME", "rel", TRUE);
	parse_ok(&opts, URL, mnt, NULL);
	g_assert_cmpstr(opts.cache_dir, ==, "/home/tester/.cache/imapfs");
	fs_options_clear(&opts);
	g_unsetenv("XDG_CACHE_HOME");
	parse_ok(&opts, URL, mnt, NULL);
	g_assert_cmpstr(opts.cache_dir, ==, "/home/tester/.cache/imapfs");
	fs_options_clear(&opts);

	/* A relative mountpoint becomes absolute. */
	g_assert_cmpint(chdir(tmpdir), ==, 0);
	parse_ok(&opts, URL, "mnt", NULL);
	g_assert_cmpstr(opts.mountpoint, ==, mnt);
	fs_options_clear(&opts);
	parse_ok(&opts, "--", URL, "./mnt/", NULL);
	g_assert_cmpstr(opts.mountpoint, ==, mnt);
	fs_options_clear(&opts);
	g_assert_cmpint(chdir(cwd), ==, 0);

	/* -d implies -f. */
	parse_ok(&opts, "-d", URL, mnt, NULL);
	g_assert_true(opts.debug);
	g_assert_true(opts.foreground);
	fs_options_clear(&opts);
}

static void test_fuse_args(void)
{
	static const struct fuse_lowlevel_ops ops;
	g_autofree char *args = NULL;
	struct fuse_args copy = FUSE_ARGS_INIT(0, NULL);
	struct fuse_session *se;
	FsOptions opts;

	parse_ok(&opts, URL, mnt, "-o", "rw,nodev,password_file=/etc/x,_netdev",
		 "-o",
		 "allow_other,max_read=65536,nofail,noauto,auto,user,users,"
		 "nouser,defaults,x-systemd.automount,comment=x,ro,"
		 "fsname=other,subtype=other,context=a\\,b",
		 NULL);
	args = joined_fuse_args(&opts);
	g_assert_cmpstr(args, ==,
			"imapfs|-o|nodev,allow_other,max_read=65536,"
			"context=a\\,b," OURS "," FSNAME);
	g_assert_cmpstr(opts.password_file, ==, "/etc/x");

	/* libfuse itself accepts what we give it. */
	for (int i = 0; i < opts.fuse_args.argc; i++)
		g_assert_cmpint(fuse_opt_add_arg(&copy, opts.fuse_args.argv[i]),
				==, 0);
	se = fuse_session_new(&copy, &ops, sizeof(ops), NULL);
	g_assert_nonnull(se);
	fuse_session_destroy(se);
	fuse_opt_free_args(&copy);
	fs_options_clear(&opts);

	/* Nothing of the user's but ours. */
	parse_ok(&opts, URL, mnt, NULL);
	g_clear_pointer(&args, g_free);
	args = joined_fuse_args(&opts);
	g_assert_cmpstr(args, ==, "imapfs|-o|" OURS "," FSNAME);
	fs_options_clear(&opts);
}

static void test_no_password_in_fuse_args(void)
{
	g_autofree char *pwfile =
	    test_write_file(tmpdir, "pw-" SECRET, SECRET "\n", 0600);
	g_autofree char *file_opt = g_strconcat("password_file=", pwfile, NULL);
	FsOptions opts;
	GError *error = NULL;
	char *pw;

	parse_ok(&opts, URL, mnt, "--password-command=printf " SECRET, "-o",
		 file_opt, "-o", "password_command=printf " SECRET, NULL);
	for (int i = 0; i < opts.fuse_args.argc; i++)
		g_assert_null(strstr(opts.fuse_args.argv[i], SECRET));
	pw = fs_password_get(&opts, &error);
	g_assert_no_error(error);
	g_assert_cmpstr(pw, ==, SECRET);
	fs_password_free(pw);
	fs_password_free(NULL);
	fs_options_clear(&opts);
}

static void test_cache_size(void)
{
	static const struct {
		const char *arg;
		uint64_t want;
	} good[] = {
		{ "0", 0 },
		{ "4096", 4096 },
		{ "500K", 500ull << 10 },
		{ "500k", 500ull << 10 },
		{ "64M", 64ull << 20 },
		{ "64MiB", 64ull << 20 },
		{ "2G", 2ull << 30 },
		{ "2GB", 2ull << 30 },
		{ "1T", 1ull << 40 },
	};
	static const char *const bad[] = { "",
					   "M",
					   "-1",
					   "1.5G",
					   "2X",
					   "2GiBs",
					   " 2G",
					   "99999999999999999999",
					   "17179869184T" };
	FsOptions opts;

	for (size_t i = 0; i < G_N_ELEMENTS(good); i++) {
		g_autofree char *a =
		    g_strconcat("--cache-size=", good[i].arg, NULL);
		g_autofree char *o =
		    g_strconcat("cache_size=", good[i].arg, NULL);

		parse_ok(&opts, a, URL, mnt, NULL);
		g_assert_cmpuint(opts.cache_size, ==, good[i].want);
		fs_options_clear(&opts);
		parse_ok(&opts, URL, mnt, "-o", o, NULL);
		g_assert_cmpuint(opts.cache_size, ==, good[i].want);
		fs_options_clear(&opts);
	}
	for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
		g_autofree char *a = g_strconcat("--cache-size=", bad[i], NULL);

		parse_fails("--cache-size must be a size such as 500M, 2G or 0 "
			    "(no limit)",
			    a, URL, mnt, NULL);
	}
	parse_ok(&opts, URL, mnt, NULL);
	g_assert_cmpuint(opts.cache_size, ==, 0);
	fs_options_clear(&opts);
}

static void test_poll_and_xattr(void)
{
	FsOptions opts;

	parse_ok(&opts, URL, mnt, NULL);
	g_assert_cmpuint(opts.poll_interval, ==, 60);
	g_assert_false(opts.xattr);
	fs_options_clear(&opts);
	parse_ok(&opts, "--poll-interval=5", "--xattr", URL, mnt, NULL);
	g_assert_cmpuint(opts.poll_interval, ==, 5);
	g_assert_true(opts.xattr);
	fs_options_clear(&opts);
	parse_ok(&opts, URL, mnt, "-o", "poll_interval=86400,xattr", NULL);
	g_assert_cmpuint(opts.poll_interval, ==, 86400);
	g_assert_true(opts.xattr);
	fs_options_clear(&opts);
	parse_fails("--poll-interval must be between 5 and 86400 seconds",
		    "--poll-interval=4", URL, mnt, NULL);
	parse_fails("--poll-interval must be between 5 and 86400 seconds",
		    "--poll-interval=86401", URL, mnt, NULL);
	parse_fails("option 'xattr' takes no value", URL, mnt, "-o", "xattr=1",
		    NULL);
}

/* Per-server switches: --disable-extension and --prefetch. */
static void test_provider_switches(void)
{
	FsOptions opts;

	parse_ok(&opts, URL, mnt, NULL);
	g_assert_null(opts.disable_extension);
	g_assert_cmpint(opts.prefetch, ==, FS_OPT_PREFETCH_AUTO);
	fs_options_clear(&opts);
	parse_ok(&opts, "--disable-extension=QRESYNC CONDSTORE", "--prefetch",
		 "off", URL, mnt, "-o", "disable_extension=X-GM-EXT-1", NULL);
	g_assert_cmpstr(opts.disable_extension, ==,
			"QRESYNC CONDSTORE X-GM-EXT-1");
	g_assert_cmpint(opts.prefetch, ==, FS_OPT_PREFETCH_OFF);
	fs_options_clear(&opts);
	parse_ok(&opts, URL, mnt, "-o", "prefetch=ahead", NULL);
	g_assert_cmpint(opts.prefetch, ==, FS_OPT_PREFETCH_AHEAD);
	fs_options_clear(&opts);
	parse_fails("--prefetch must be auto, off or ahead", "--prefetch=all",
		    URL, mnt, NULL);
}

static void test_layout(void)
{
	FsOptions opts;

	parse_ok(&opts, URL, mnt, NULL);
	g_assert_cmpint(opts.layout, ==, FS_LAYOUT_EML);
	fs_options_clear(&opts);
	parse_ok(&opts, "--layout=parts", URL, mnt, NULL);
	g_assert_cmpint(opts.layout, ==, FS_LAYOUT_PARTS);
	fs_options_clear(&opts);
	parse_ok(&opts, URL, mnt, "-o", "layout=parts,layout=eml", NULL);
	g_assert_cmpint(opts.layout, ==, FS_LAYOUT_EML);
	fs_options_clear(&opts);
	parse_ok(&opts, "--layout=maildir", URL, mnt, NULL);
	g_assert_cmpint(opts.layout, ==, FS_LAYOUT_MAILDIR);
	fs_options_clear(&opts);
	parse_fails("--layout must be eml, parts or maildir", "--layout=mbox",
		    URL, mnt, NULL);
}

static void test_modes(void)
{
	static const char *const bad_umask[] = { "8",   "0778", "1000", "",
						 "-22", "0x1f", "77777" };
	FsOptions opts;
	g_autofree char *joined = NULL;

	parse_ok(&opts, URL, mnt, NULL);
	g_assert_cmpuint(opts.umask, ==, 077);
	g_assert_cmpuint(opts.uid, ==, getuid());
	g_assert_cmpuint(opts.gid, ==, getgid());
	fs_options_clear(&opts);
	parse_ok(&opts, URL, mnt, "-o", "allow_other,umask=022,uid=65534,gid=0",
		 NULL);
	g_assert_cmpuint(opts.umask, ==, 022);
	g_assert_cmpuint(opts.uid, ==, 65534);
	g_assert_cmpuint(opts.gid, ==, 0);
	/* Ours, not FUSE's: libfuse's low-level API refuses them. */
	joined = joined_fuse_args(&opts);
	g_assert_null(strstr(joined, "umask"));
	g_assert_null(strstr(joined, "uid="));
	g_assert_nonnull(strstr(joined, "allow_other"));
	fs_options_clear(&opts);
	parse_ok(&opts, "--umask=7", "--uid=root", "--gid=root", URL, mnt,
		 NULL);
	g_assert_cmpuint(opts.umask, ==, 07);
	g_assert_cmpuint(opts.uid, ==, 0);
	g_assert_cmpuint(opts.gid, ==, 0);
	fs_options_clear(&opts);
	for (size_t i = 0; i < G_N_ELEMENTS(bad_umask); i++) {
		g_autofree char *a =
		    g_strconcat("--umask=", bad_umask[i], NULL);

		parse_fails("umask must be octal, 000 to 777, such as 077 or "
			    "022",
			    a, URL, mnt, NULL);
	}
	parse_fails("uid: no such user: 'no-such-user-imapfs'",
		    "--uid=no-such-user-imapfs", URL, mnt, NULL);
	parse_fails("gid: no such group: 'no-such-group-imapfs'", URL, mnt,
		    "-o", "gid=no-such-group-imapfs", NULL);
}

static void test_bounds(void)
{
	static const char *const bad_conn[] = {
		"0",  "65", "abc",
		"-1", "4x", "",
		" 4", "+4", "99999999999999999999"
	};
	static const char *const bad_timeout[] = { "0", "3601", "1.5", "" };
	FsOptions opts;

	for (size_t i = 0; i < G_N_ELEMENTS(bad_conn); i++) {
		g_autofree char *a =
		    g_strconcat("--connections=", bad_conn[i], NULL);
		g_autofree char *o =
		    g_strconcat("connections=", bad_conn[i], NULL);

		parse_fails("--connections must be between 1 and 64", a, URL,
			    mnt, NULL);
		parse_fails("--connections must be between 1 and 64", URL, mnt,
			    "-o", o, NULL);
	}
	for (size_t i = 0; i < G_N_ELEMENTS(bad_timeout); i++) {
		g_autofree char *a =
		    g_strconcat("--timeout=", bad_timeout[i], NULL);

		parse_fails("--timeout must be between 1 and 3600", a, URL, mnt,
			    NULL);
	}
	parse_ok(&opts, "--connections=1", "--timeout=1", URL, mnt, NULL);
	g_assert_cmpuint(opts.connections, ==, 1);
	g_assert_cmpuint(opts.timeout, ==, 1);
	fs_options_clear(&opts);
	parse_ok(&opts, "--connections=64", "--timeout=3600", URL, mnt, NULL);
	g_assert_cmpuint(opts.connections, ==, 64);
	g_assert_cmpuint(opts.timeout, ==, 3600);
	fs_options_clear(&opts);
}

/* --offline and -o nonempty are ours: libfuse 3 refuses "nonempty". */
static void test_offline_nonempty(void)
{
	FsOptions opts;
	g_autofree char *joined = NULL;

	parse_ok(&opts, URL, mnt, NULL);
	g_assert_false(opts.offline);
	g_assert_false(opts.nonempty);
	fs_options_clear(&opts);
	parse_ok(&opts, "--offline", URL, mnt, "-o", "nonempty", NULL);
	g_assert_true(opts.offline);
	g_assert_true(opts.nonempty);
	joined = joined_fuse_args(&opts);
	g_assert_null(strstr(joined, "nonempty"));
	g_assert_null(strstr(joined, "offline"));
	fs_options_clear(&opts);
	parse_ok(&opts, URL, mnt, "-o", "offline", "--nonempty", NULL);
	g_assert_true(opts.offline && opts.nonempty);
	fs_options_clear(&opts);
	parse_fails("option 'offline' takes no value", URL, mnt, "-o",
		    "offline=1", NULL);
}

static void test_errors(void)
{
	g_autofree char *missing = tmp_path("no-such-dir");
	g_autofree char *file = test_write_file(tmpdir, "plain-file", "", 0644);
	g_autofree char *msg_missing = g_strdup_printf(
	    "mountpoint %s: No such file or directory", missing);
	g_autofree char *msg_file =
	    g_strdup_printf("mountpoint %s: Not a directory", file);

	parse_fails("missing URL or ACCOUNT" USAGE, NULL);
	parse_fails("missing URL or ACCOUNT" USAGE, "-f", NULL);
	parse_fails("missing MOUNTPOINT" USAGE, URL, NULL);
	parse_fails("unexpected argument 'extra'", URL, mnt, "extra", NULL);
	parse_fails("unknown option '--bogus'", "--bogus", URL, mnt, NULL);
	parse_fails("unknown option '--bogus'", URL, mnt, "--bogus=" SECRET,
		    NULL);
	parse_fails("unknown option '-x'", "-x", URL, mnt, NULL);
	parse_fails("unknown option '-s'", "-s", URL, mnt, NULL);
	parse_fails("option '--cafile' needs a value", URL, mnt, "--cafile",
		    NULL);
	parse_fails("option '--insecure' takes no value", "--insecure=yes", URL,
		    mnt, NULL);
	parse_fails("option 'insecure' takes no value", "-o", "insecure=1", URL,
		    mnt, NULL);
	parse_fails("option 'password_file' needs a value", "-o",
		    "password_file", URL, mnt, NULL);
	parse_fails("option '-o' needs a value", URL, mnt, "-o", NULL);
	parse_fails("--cache-dir needs a value", "--cache-dir=", URL, mnt,
		    NULL);
	parse_fails("--password-command needs a value", "-o",
		    "password_command=", URL, mnt, NULL);
	parse_fails(msg_missing, URL, missing, NULL);
	parse_fails(msg_file, URL, file, NULL);
	parse_fails("cafile /nonexistent/ca.pem: No such file or directory",
		    "--cafile=/nonexistent/ca.pem", URL, mnt, NULL);
	/* The URL is checked before the mountpoint. */
	parse_fails("invalid URL 'x:': expected imaps://USER@HOST[:PORT] or "
		    "imap://USER@HOST[:PORT]",
		    "x:", missing, NULL);
}

static void test_help(void)
{
	if (g_test_subprocess()) {
		FsOptions opts;
		GError *error = NULL;
		char *argv[] = { (char *)"/usr/bin/imapfs",
				 (char *)"--cache-dir=/c", (char *)"--help",
				 (char *)"--bogus", NULL };

		g_assert_cmpint(fs_options_parse(4, argv, &opts, &error), ==,
				FS_OPTIONS_EXIT_OK);
		g_assert_no_error(error);
		g_assert_null(opts.cache_dir); /* freed already */
		return;
	}
	g_test_trap_subprocess(NULL, 0, G_TEST_SUBPROCESS_DEFAULT);
	g_test_trap_assert_passed();
	g_test_trap_assert_stderr("");
	g_test_trap_assert_stdout("usage: imapfs [options] URL MOUNTPOINT\n*");
	g_test_trap_assert_stdout("*--password-command=CMD*");
	g_test_trap_assert_stdout("*--password-file=FILE*");
	g_test_trap_assert_stdout("*--cafile=FILE*");
	g_test_trap_assert_stdout("*--cache-dir=DIR*~/.cache/imapfs*");
	g_test_trap_assert_stdout("*--connections=N*(default: 4)*");
	g_test_trap_assert_stdout("*--timeout=SECONDS*(default: 10)*");
	g_test_trap_assert_stdout("*--insecure*");
	g_test_trap_assert_stdout("*IMAPFS_PASSWORD*");
	g_test_trap_assert_stdout("*fuse.imapfs*");
	g_test_trap_assert_stdout(
	    "*--auth=MECH*--token-command=CMD*"
	    "--provider=NAME*--oauth-client-id=ID*"
	    "--oauth-client-secret-command=CMD*"
	    "--oauth-token-url=URL*--oauth-device-url=URL*"
	    "--oauth-scope=SCOPE*"
	    "--oauth-refresh-token-command=CMD*"
	    "--authorize URL*");
	g_test_trap_assert_stdout("*\nSee imapfs(1).\n");
}

static void test_version(void)
{
	g_autofree char *want = NULL;

	if (g_test_subprocess()) {
		FsOptions opts;
		GError *error = NULL;
		char *argv[] = { (char *)"imapfs", (char *)"-V", NULL };

		g_assert_cmpint(fs_options_parse(2, argv, &opts, &error), ==,
				FS_OPTIONS_EXIT_OK);
		g_assert_no_error(error);
		fs_options_clear(&opts);
		return;
	}
	g_test_trap_subprocess(NULL, 0, G_TEST_SUBPROCESS_DEFAULT);
	g_test_trap_assert_passed();
	want = g_strdup_printf("imapfs " IMAPFS_VERSION "\nlibfuse %s\n"
			       "OpenSSL *\nGLib %u.%u.%u\n",
			       fuse_pkgversion(), glib_major_version,
			       glib_minor_version, glib_micro_version);
	g_test_trap_assert_stdout(want);
}

/* OAuth: --auth, the token sources, --authorize without a mount point,
 * and a client secret refused on the command line (its value unsaid). */
static void test_oauth(void)
{
	FsOptions opts;

	parse_ok(&opts, "--auth=XOAUTH2", "--token-command=oama access me",
		 "-o", "provider=google,oauth_client_id=id.apps", URL, mnt,
		 NULL);
	g_assert_cmpuint(opts.auth, ==, 3);
	g_assert_cmpstr(opts.token_command, ==, "oama access me");
	g_assert_cmpstr(opts.provider, ==, "google");
	g_assert_cmpstr(opts.oauth_client_id, ==, "id.apps");
	g_assert_false(opts.authorize);
	fs_options_clear(&opts);

	parse_ok(&opts, "--authorize", URL, "--provider=microsoft",
		 "--oauth-scope=a b", "--oauth-device-url=https://h/d", NULL);
	g_assert_true(opts.authorize);
	g_assert_null(opts.mountpoint);
	g_assert_cmpstr(opts.oauth_scope, ==, "a b");
	g_assert_cmpstr(opts.oauth_device_url, ==, "https://h/d");
	fs_options_clear(&opts);

	parse_fails("--auth must be auto, plain, login, xoauth2 or "
		    "oauthbearer",
		    "--auth=cram-md5", URL, mnt, NULL);
	parse_fails("--provider must be google or microsoft",
		    "--provider=yahoo", URL, mnt, NULL);
	parse_fails("oauth-client-secret is a secret and is not accepted on "
		    "the command line (other users can see it there): put it "
		    "in the config file or use --oauth-client-secret-command",
		    "--oauth-client-secret=" SECRET, URL, mnt, NULL);
	parse_fails("oauth-client-secret is a secret and is not accepted on "
		    "the command line (other users can see it there): put it "
		    "in the config file or use --oauth-client-secret-command",
		    "-o", "oauth_client_secret=" SECRET, URL, mnt, NULL);
}

int main(int argc, char **argv)
{
	GError *error = NULL;
	g_autofree char *m = NULL;
	int r;

	g_test_init(&argc, &argv, NULL);
	g_unsetenv("IMAPFS_PASSWORD");
	tmpdir = g_dir_make_tmp("imapfs-test-options-XXXXXX", &error);
	g_assert_no_error(error);
	m = g_build_filename(tmpdir, "mnt", NULL);
	g_assert_cmpint(g_mkdir(m, 0700), ==, 0);
	mnt = realpath(m, NULL);
	g_assert_nonnull(mnt);

	g_test_add_func("/options/url", test_url);
	g_test_add_func("/options/forms", test_option_forms);
	g_test_add_func("/options/values", test_option_values);
	g_test_add_func("/options/defaults", test_defaults);
	g_test_add_func("/options/fuse-args", test_fuse_args);
	g_test_add_func("/options/no-password-in-fuse-args",
			test_no_password_in_fuse_args);
	g_test_add_func("/options/bounds", test_bounds);
	g_test_add_func("/options/modes", test_modes);
	g_test_add_func("/options/cache-size", test_cache_size);
	g_test_add_func("/options/poll-and-xattr", test_poll_and_xattr);
	g_test_add_func("/options/provider-switches", test_provider_switches);
	g_test_add_func("/options/errors", test_errors);
	g_test_add_func("/options/offline-nonempty", test_offline_nonempty);
	g_test_add_func("/options/layout", test_layout);
	g_test_add_func("/options/help", test_help);
	g_test_add_func("/options/version", test_version);
	g_test_add_func("/options/oauth", test_oauth);
	r = g_test_run();

	test_remove_tree(tmpdir);
	free(mnt);
	g_free(tmpdir);
	return r;
}
