/* tests/unit/test-config.c: named accounts in the config file, read by
 * fs_options_parse() for "imapfs NAME [DIR]" (fs/config.c). Everything
 * runs in a private temporary directory that is $HOME, with
 * $XDG_CONFIG_HOME and $XDG_CACHE_HOME unset, so the defaults are
 * exercised too.
 */
#include "tests/unit/test-util.h"
#include "fs/config.h"
#include "fs/options.h"

#include <errno.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define OURS "ro,noatime,default_permissions,subtype=imapfs"

static char *home; /* private, canonical, removed at the end */
static char *mnt;  /* home/mnt, a real directory */
static char *mnt2; /* home/other */

static const char good[] =
    "# two accounts\n"
    "[work]\n"
    "url = imaps://me@mail.example.org\n"
    "mountpoint = ~/mnt\n"
    "connections = 3\n"
    "xattr = true\n"
    "insecure = false\n"
    "options = allow_other,max_read=65536\n"
    "\n"
    "[home]\n"
    "url=imap://me%40example.net@imap.example.net:1143   \n"
    "password-command = printf '%s\\n' x\n"
    "cache_size = 1G\n";

/* Write the default config file (~/.config/imapfs/config) with mode. */
static void write_config(const char *text, int mode)
{
	g_autofree char *dir =
	    g_build_filename(home, ".config", "imapfs", NULL);
	g_autofree char *path = NULL;

	g_assert_cmpint(g_mkdir_with_parents(dir, 0700), ==, 0);
	path = test_write_file(dir, "config", text, mode);
}

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
	g_assert_null(opts.account);
	g_error_free(error);
}

static char *joined_fuse_args(const FsOptions *opts)
{
	g_autoptr(GString) s = g_string_new(NULL);

	for (int i = 0; i < opts->fuse_args.argc; i++)
		g_string_append_printf(s, "%s%s", i ? "|" : "",
				       opts->fuse_args.argv[i]);
	return g_string_free(g_steal_pointer(&s), FALSE);
}

static void test_good_file(void)
{
	FsOptions opts;
	g_autofree char *args = NULL, *cache = NULL;

	write_config(good, 0600);
	parse_ok(&opts, "work", NULL);
	g_assert_cmpstr(opts.account, ==, "work");
	g_assert_cmpstr(opts.url, ==, "imaps://me@mail.example.org");
	g_assert_cmpstr(opts.server.host, ==, "mail.example.org");
	g_assert_cmpstr(opts.mountpoint, ==, mnt);
	g_assert_cmpuint(opts.connections, ==, 3);
	g_assert_true(opts.xattr);
	g_assert_false(opts.insecure);
	/* A cache directory of its own, under the default root. */
	cache = g_build_filename(home, ".cache", "imapfs", "work", NULL);
	g_assert_cmpstr(opts.cache_dir, ==, cache);
	/* The account's name is the fsname; its options go to FUSE. */
	args = joined_fuse_args(&opts);
	g_assert_cmpstr(args, ==,
			"imapfs|-o|allow_other,max_read=65536," OURS
			",fsname=work");
	fs_options_clear(&opts);

	/* Trailing blanks dropped, a command kept as written. */
	parse_ok(&opts, "home", mnt2, NULL);
	g_assert_cmpstr(opts.url, ==,
			"imap://me%40example.net@imap.example.net:1143");
	g_assert_cmpstr(opts.server.user, ==, "me@example.net");
	g_assert_cmpstr(opts.password_command, ==, "printf '%s\\n' x");
	g_assert_cmpuint(opts.cache_size, ==, 1u << 30);
	g_assert_cmpstr(opts.mountpoint, ==, mnt2);
	g_assert_cmpuint(opts.connections, ==, 4);
	fs_options_clear(&opts);
}

static void test_command_line_overrides(void)
{
	FsOptions opts;
	g_autofree char *cfg = g_build_filename(home, "other.conf", NULL);
	g_autofree char *args = NULL;

	write_config(good, 0600);
	parse_ok(&opts, "--connections=7", "work", "--cache-dir=/tmp/c", mnt2,
		 "-o", "poll_interval=30", NULL);
	g_assert_cmpuint(opts.connections, ==, 7);
	g_assert_cmpstr(opts.cache_dir, ==, "/tmp/c");
	g_assert_cmpstr(opts.mountpoint, ==, mnt2);
	g_assert_cmpuint(opts.poll_interval, ==, 30);
	g_assert_true(opts.xattr); /* from the file */
	fs_options_clear(&opts);

	/* --config=FILE and, for fstab, -o config=FILE. */
	g_assert_true(g_file_set_contents(
	    cfg, "[x]\nurl = imaps://u@h\nmountpoint = ~/mnt\n", -1, NULL));
	parse_ok(&opts, "--config", cfg, "x", NULL);
	g_assert_cmpstr(opts.server.host, ==, "h");
	fs_options_clear(&opts);
	parse_fails("~/.config/imapfs/config: no account \"x\"; the "
		    "accounts are: work, home",
		    "x", mnt2, NULL);
	g_autofree char *o = g_strconcat("rw,nosuid,nodev,config=", cfg, NULL);
	parse_ok(&opts, "x", mnt2, "-o", o, NULL);
	g_assert_cmpstr(opts.mountpoint, ==, mnt2);
	args = joined_fuse_args(&opts);
	/* rw is dropped (the mount stays ro); nosuid, nodev go to FUSE. */
	g_assert_cmpstr(args, ==, "imapfs|-o|nosuid,nodev," OURS ",fsname=x");
	fs_options_clear(&opts);

	/* --authorize NAME signs in, no mount point needed. */
	write_config("[x]\nurl = imaps://u@h\nauth = xoauth2\n", 0600);
	parse_ok(&opts, "--authorize", "x", NULL);
	g_assert_true(opts.authorize);
	g_assert_cmpstr(opts.account, ==, "x");
	g_assert_cmpstr(opts.server.host, ==, "h");
	fs_options_clear(&opts);
	write_config(good, 0600);

	/* A URL on the command line needs no config file at all. */
	parse_ok(&opts, "imaps://me@h", mnt, "--config=/nonexistent", NULL);
	g_assert_null(opts.account);
	fs_options_clear(&opts);
}

static void test_errors(void)
{
	write_config("[work]\nurl = imaps://me@h\n\n# a comment\n"
		     "conections = 3\n",
		     0600);
	parse_fails("~/.config/imapfs/config:5: unknown key \"conections\" "
		    "in [work] (did you mean \"connections\"?)",
		    "work", NULL);
	write_config("[work]\nurl = imaps://me@h\nzzz = 1\n", 0600);
	parse_fails("~/.config/imapfs/config:3: unknown key \"zzz\" in "
		    "[work]",
		    "work", NULL);
	write_config("[work]\nurl = imaps://me@h\npassword = x\n", 0600);
	parse_fails("~/.config/imapfs/config:3: unknown key \"password\" in "
		    "[work]: the config file holds no password; use "
		    "password-command or password-file",
		    "work", NULL);
	write_config("[a]\n[work]\nurl = imaps://me@h\n\nconnections = 99\n",
		     0600);
	parse_fails("~/.config/imapfs/config:5: bad value for connections in "
		    "[work]: --connections must be between 1 and 64",
		    "work", NULL);
	write_config("[work]\nurl = imaps://me@h\nxattr = maybe\n", 0600);
	parse_fails("~/.config/imapfs/config:3: bad value for xattr in "
		    "[work]: xattr takes true or false",
		    "work", NULL);
	write_config("[work]\nurl = imaps://me@h\nmountpoint = mail\n", 0600);
	parse_fails("~/.config/imapfs/config:3: mountpoint in [work] must be "
		    "an absolute path or start with ~/",
		    "work", NULL);
	write_config("[work]\nurl = imaps://me@h\n", 0600);
	parse_fails("account work has no mountpoint: add \"mountpoint = "
		    "DIR\" to [work] in the config file, or give a directory "
		    "after the name",
		    "work", NULL);
	write_config("[work]\nmountpoint = ~/mnt\n", 0600);
	parse_fails("~/.config/imapfs/config:1: account [work] has no url",
		    "work", NULL);
	write_config("[work]\nurl = imaps://me:pw@h\nmountpoint = ~/mnt\n",
		     0600);
	parse_fails("the URL must not contain a password: use "
		    "--password-command or --password-file",
		    "work", NULL);
	/* The line is not quoted: it may hold a secret. */
	write_config("[work]\nurl = imaps://me@h\noauth-client-secret s3cr\n",
		     0600);
	parse_fails("~/.config/imapfs/config:3: not a \"key = value\" line, a "
		    "[group] or a # comment",
		    "work", NULL);
	write_config("[../x]\nurl = imaps://me@h\n", 0600);
	parse_fails("~/.config/imapfs/config:1: account name [../x]: use "
		    "letters, digits and '.', '_', '-', '@', '+'",
		    "../x", NULL);
}

static void test_unknown_account(void)
{
	write_config(good, 0600);
	parse_fails("~/.config/imapfs/config: no account \"wrok\"; the "
		    "accounts are: work, home",
		    "wrok", NULL);
	write_config("# nothing yet\n", 0600);
	parse_fails("~/.config/imapfs/config: no account \"work\"; it has "
		    "no accounts",
		    "work", NULL);
	parse_fails("/nonexistent/config: no such config file: give a URL "
		    "(imaps://USER@HOST) or create the file with a group "
		    "[NAME] per account (see imapfs(1))",
		    "--config=/nonexistent/config", "work", NULL);
}

/* A secret in a file that others can read draws one warning line. */
static void test_permissions(void)
{
	static const struct {
		int mode;
		const char *key;
		bool warn;
	} cases[] = {
		{ 0644, "oauth-client-secret", true },
		{ 0640, "oauth-refresh-token", true },
		{ 0600, "oauth-client-secret", false },
		{ 0644, "connections", false },
	};

	if (g_test_subprocess()) {
		FsOptions opts;
		g_autofree char *text =
		    g_strdup_printf("[work]\nurl = imaps://me@h\n%s = 3\n",
				    g_getenv("TEST_KEY"));
		int mode = (int)strtol(g_getenv("TEST_MODE"), NULL, 8);
		GError *error = NULL;
		const char *argv[] = { "imapfs", "--accounts", NULL };

		write_config(text, mode);
		g_assert_cmpint(
		    fs_options_parse(2, (char **)argv, &opts, &error), ==,
		    FS_OPTIONS_EXIT_OK);
		g_assert_no_error(error);
		return;
	}
	for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
		g_autofree char *m = g_strdup_printf("%o", cases[i].mode);
		g_autofree char *want = g_strdup_printf(
		    "imapfs: warning: ~/.config/imapfs/config holds a secret "
		    "(%s in [work]) and other users can read it: chmod 600 "
		    "~/.config/imapfs/config\n",
		    cases[i].key);

		g_setenv("TEST_MODE", m, TRUE);
		g_setenv("TEST_KEY", cases[i].key, TRUE);
		g_test_trap_subprocess(NULL, 0, G_TEST_SUBPROCESS_DEFAULT);
		g_test_trap_assert_passed();
		g_test_trap_assert_stdout("work  not mounted (mountpoint: "
					  "none)\n");
		g_test_trap_assert_stderr(cases[i].warn ? want : "");
	}
	g_unsetenv("TEST_MODE");
	g_unsetenv("TEST_KEY");
}

static void test_list_accounts(void)
{
	if (g_test_subprocess()) {
		FsOptions opts;
		GError *error = NULL;
		const char *argv[] = { "imapfs", "--accounts", NULL };

		write_config(good, 0600);
		g_assert_cmpint(
		    fs_options_parse(2, (char **)argv, &opts, &error), ==,
		    FS_OPTIONS_EXIT_OK);
		g_assert_no_error(error);
		return;
	}
	g_test_trap_subprocess(NULL, 0, G_TEST_SUBPROCESS_DEFAULT);
	g_test_trap_assert_passed();
	g_test_trap_assert_stdout("work  not mounted (mountpoint: ~/mnt)\n"
				  "home  not mounted (mountpoint: none)\n");
	g_test_trap_assert_stderr("");
}

/* A HOME that another user owns (mount(8) gives a user's helper root's)
 * is not ours: the password database's home is. */
static void test_foreign_home(void)
{
	g_autofree char *other = g_build_filename(home, "foreign", NULL);
	g_autofree char *want = NULL, *got = NULL;
	struct passwd *pw = getpwuid(getuid());
	uid_t foreign = getuid() == 0 ? 65534 : 0;

	g_assert_nonnull(pw);
	g_assert_cmpint(g_mkdir(other, 0755), ==, 0);
	if (getuid() != 0 || chown(other, foreign, (gid_t)-1) < 0) {
		g_test_skip("needs root to give a directory away");
		return;
	}
	g_setenv("HOME", other, TRUE);
	got = fs_config_default_path();
	want =
	    g_build_filename(pw->pw_dir, ".config", "imapfs", "config", NULL);
	g_assert_cmpstr(got, ==, want);
	g_setenv("HOME", home, TRUE);
	g_free(got);
	got = fs_config_default_path();
	g_assert_true(g_str_has_prefix(got, home));
}

/* fs_options_set() is what the file's keys go through. */
static void test_options_set(void)
{
	FsOptions opts = { 0 };
	GError *error = NULL;

	g_assert_cmpint(fs_options_set(&opts, "poll_interval", "10", &error),
			==, 0);
	g_assert_cmpuint(opts.poll_interval, ==, 10);
	g_assert_cmpint(fs_options_set(&opts, "insecure", "TRUE", &error), ==,
			0);
	g_assert_true(opts.insecure);
	g_assert_cmpint(fs_options_set(&opts, "nope", "1", &error), ==,
			-ENOENT);
	g_assert_no_error(error);
	g_assert_cmpint(fs_options_set(&opts, "timeout", "0", &error), ==,
			-EINVAL);
	g_assert_nonnull(error);
	g_clear_error(&error);
	g_assert_nonnull(fs_options_name(0));
	for (unsigned i = 0; fs_options_name(i); i++)
		g_assert_null(strchr(fs_options_name(i), '_'));
	fs_options_clear(&opts);
}

int main(int argc, char **argv)
{
	GError *error = NULL;
	g_autofree char *h = NULL;
	int r;

	g_test_init(&argc, &argv, NULL);
	h = g_dir_make_tmp("imapfs-test-config-XXXXXX", &error);
	g_assert_no_error(error);
	home = realpath(h, NULL);
	g_assert_nonnull(home);
	mnt = g_build_filename(home, "mnt", NULL);
	mnt2 = g_build_filename(home, "other", NULL);
	g_assert_cmpint(g_mkdir(mnt, 0700), ==, 0);
	g_assert_cmpint(g_mkdir(mnt2, 0700), ==, 0);
	g_setenv("HOME", home, TRUE);
	g_unsetenv("XDG_CONFIG_HOME");
	g_unsetenv("XDG_CACHE_HOME");
	g_unsetenv("IMAPFS_PASSWORD");

	g_test_add_func("/config/good-file", test_good_file);
	g_test_add_func("/config/command-line-overrides",
			test_command_line_overrides);
	g_test_add_func("/config/errors", test_errors);
	g_test_add_func("/config/unknown-account", test_unknown_account);
	g_test_add_func("/config/permissions", test_permissions);
	g_test_add_func("/config/list-accounts", test_list_accounts);
	g_test_add_func("/config/options-set", test_options_set);
	g_test_add_func("/config/foreign-home", test_foreign_home);
	r = g_test_run();

	test_remove_tree(home);
	free(home);
	g_free(mnt);
	g_free(mnt2);
	return r;
}
