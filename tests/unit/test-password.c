/* tests/unit/test-password.c: the password sources of fs/password.c.
 *
 * Everything runs in a private temporary directory; the terminal prompt is
 * exercised on a pseudo-terminal owned by a forked child, synchronised on
 * the prompt text (a generous poll limit only turns a hang into a failure).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include "tests/unit/test-util.h"
#include "fs/password.h"

#include <errno.h>
#include <fcntl.h>
#include <glib/gstdio.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#define SECRET "s3cret-Pw"

static char *tmpdir; /* private, removed at the end */

static char *tmp_path(const char *name)
{
	return g_build_filename(tmpdir, name, NULL);
}

static char *get_password(const FsOptions *opts, GError **error)
{
	return fs_password_get(opts, error);
}

static void assert_password(const FsOptions *opts, const char *want)
{
	GError *error = NULL;
	char *pw = get_password(opts, &error);

	g_assert_no_error(error);
	g_assert_cmpstr(pw, ==, want);
	fs_password_free(pw);
}

static void assert_password_error(const FsOptions *opts, const char *msg)
{
	GError *error = NULL;
	char *pw = get_password(opts, &error);

	g_assert_null(pw);
	g_assert_nonnull(error);
	g_assert_cmpstr(error->message, ==, msg);
	g_error_free(error);
}

static void test_password_order(void)
{
	FsOptions opts = { 0 };

	opts.password_command = g_strdup("printf 'from-command\\n'");
	opts.password_file =
	    test_write_file(tmpdir, "pw-order", "from-file\n", 0600);
	g_setenv("IMAPFS_PASSWORD", "from-env", TRUE);
	assert_password(&opts, "from-command");
	g_clear_pointer(&opts.password_command, g_free);
	assert_password(&opts, "from-file");
	g_clear_pointer(&opts.password_file, g_free);
	assert_password(&opts, "from-env");
	g_setenv("IMAPFS_PASSWORD", "from-env\r\n", TRUE);
	assert_password(&opts, "from-env");
	g_setenv("IMAPFS_PASSWORD", "two\nlines", TRUE);
	assert_password_error(&opts, "the password from IMAPFS_PASSWORD "
				     "contains a NUL or line break");
	g_unsetenv("IMAPFS_PASSWORD");
	fs_options_clear(&opts);
}

static void test_password_command(void)
{
	g_autofree char *pidfile = tmp_path("background.pid");
	g_autofree char *bg = NULL;
	FsOptions opts = { 0 };
	GError *error = NULL;
	char *pw;

	opts.password_command = g_strdup("printf 'a b\\r\\nsecond line\\n'");
	assert_password(&opts, "a b");
	g_free(opts.password_command);
	opts.password_command = g_strdup("printf 'no-newline'");
	assert_password(&opts, "no-newline");
	/* Much more output than a pipe holds: read to the end, keep line 1. */
	g_free(opts.password_command);
	opts.password_command =
	    g_strdup("printf 'pw\\n'; head -c 1000000 /dev/zero");
	assert_password(&opts, "pw");
	/* A process left behind holding stdout must not make us wait. */
	g_free(opts.password_command);
	opts.password_command = g_strdup_printf(
	    "printf 'early\\n'; sleep 600 & echo $! > %s", pidfile);
	assert_password(&opts, "early");
	g_assert_true(g_file_get_contents(pidfile, &bg, NULL, NULL));
	g_assert_cmpint(kill((pid_t)atoi(bg), SIGKILL), ==, 0);
	g_free(opts.password_command);
	opts.password_command = g_strdup("true");
	assert_password_error(&opts,
			      "empty password from the password command");
	g_free(opts.password_command);
	opts.password_command = g_strdup("printf '\\r\\n'");
	assert_password_error(&opts,
			      "empty password from the password command");

	/* The status is reported, the output is not. */
	g_free(opts.password_command);
	opts.password_command = g_strdup("printf abc | tr a-c x-z; exit 3");
	pw = get_password(&opts, &error);
	g_assert_null(pw);
	g_assert_cmpstr(error->message, ==,
			"password command 'printf abc | tr a-c x-z; exit 3' "
			"exited with status 3");
	g_assert_null(strstr(error->message, "xyz"));
	g_clear_error(&error);

	g_free(opts.password_command);
	opts.password_command = g_strdup("kill -9 $$");
	assert_password_error(&opts, "password command 'kill -9 $$' was "
				     "killed by signal 9");
	g_free(opts.password_command);
	opts.password_command =
	    g_strdup("head -c 20000 /dev/zero | tr '\\0' x");
	assert_password_error(&opts,
			      "password command 'head -c 20000 /dev/zero | "
			      "tr '\\0' x': first line is longer than 16383 "
			      "bytes");
	fs_options_clear(&opts);
}

static void test_password_file(void)
{
	FsOptions opts = { 0 };
	g_autofree char *msg = NULL;

	opts.password_file =
	    test_write_file(tmpdir, "pw-crlf", "pw\r\nsecond\n", 0600);
	assert_password(&opts, "pw");
	g_free(opts.password_file);
	opts.password_file =
	    test_write_file(tmpdir, "pw-plain", "pw with spaces", 0400);
	assert_password(&opts, "pw with spaces");
	g_free(opts.password_file);
	opts.password_file = test_write_file(tmpdir, "pw-empty", "\n", 0600);
	msg = g_strdup_printf("empty password from password file %s",
			      opts.password_file);
	assert_password_error(&opts, msg);
	g_free(opts.password_file);
	g_free(msg);
	opts.password_file = tmp_path("pw-missing");
	msg = g_strdup_printf("password file %s: No such file or directory",
			      opts.password_file);
	assert_password_error(&opts, msg);
	fs_options_clear(&opts);
}

static void test_password_file_mode(void)
{
	static const struct {
		int mode;
		bool warn;
	} modes[] = {
		{ 0600, false }, { 0400, false }, { 0700, false },
		{ 0644, true },  { 0640, true },  { 0620, true },
		{ 0604, true },  { 0602, true },
	};

	if (g_test_subprocess()) {
		FsOptions opts = { 0 };
		const char *m = g_getenv("TEST_MODE");
		int mode = (int)strtol(m, NULL, 8);

		opts.password_file =
		    test_write_file(tmpdir, "pw-mode", "pw\n", mode);
		assert_password(&opts, "pw");
		fs_options_clear(&opts);
		return;
	}
	for (size_t i = 0; i < G_N_ELEMENTS(modes); i++) {
		g_autofree char *m = g_strdup_printf("%o", modes[i].mode);

		g_setenv("TEST_MODE", m, TRUE);
		g_test_trap_subprocess(NULL, 0, G_TEST_SUBPROCESS_DEFAULT);
		g_test_trap_assert_passed();
		if (modes[i].warn)
			g_test_trap_assert_stderr(
			    "imapfs: warning: password file /*/pw-mode "
			    "is accessible by other users\n");
		else
			g_test_trap_assert_stderr("");
	}
	g_unsetenv("TEST_MODE");
}

/* ---- the terminal prompt, on a pseudo-terminal ---- */

struct pty_child {
	pid_t pid;
	int master;
	int slave;     /* kept open here so the terminal outlives the child */
	int result;    /* pipe: what the child got */
	GString *seen; /* everything the child wrote to the terminal */
};

/* Fork a child that gets the pty as its controlling terminal and asks for
 * the password; it writes "OK:<pw>" or "ERR:<message>" to the pipe. */
static void pty_start(struct pty_child *c, bool with_tty)
{
	int fds[2];
	char *name;

	c->master = posix_openpt(O_RDWR | O_NOCTTY);
	g_assert_cmpint(c->master, >=, 0);
	g_assert_cmpint(grantpt(c->master), ==, 0);
	g_assert_cmpint(unlockpt(c->master), ==, 0);
	name = g_strdup(ptsname(c->master));
	c->slave = open(name, O_RDWR | O_NOCTTY);
	g_assert_cmpint(c->slave, >=, 0);
	g_assert_cmpint(pipe(fds), ==, 0);
	c->seen = g_string_new(NULL);
	/* Echo is on before the child starts (checked here: once it runs, it
	 * may turn echo off at any moment). */
	{
		struct termios t;

		g_assert_cmpint(tcgetattr(c->slave, &t), ==, 0);
		g_assert_true((t.c_lflag & ECHO) != 0);
	}

	c->pid = fork();
	g_assert_cmpint(c->pid, >=, 0);
	if (c->pid == 0) {
		FsOptions opts = { 0 };
		GError *error = NULL;
		g_autofree char *out = NULL;
		char *pw;

		close(fds[0]);
		close(c->master);
		if (setsid() < 0)
			_exit(90);
		/* The first terminal a session leader opens becomes its
		 * controlling terminal. */
		if (with_tty && open(name, O_RDWR) < 0)
			_exit(91);
		opts.server.user = (char *)"me";
		opts.server.host = (char *)"mail.example.org";
		pw = fs_password_get(&opts, &error);
		out = pw ? g_strconcat("OK:", pw, NULL)
			 : g_strconcat("ERR:", error->message, NULL);
		if (write(fds[1], out, strlen(out)) < 0)
			_exit(92);
		_exit(0);
	}
	g_free(name);
	close(fds[1]);
	c->result = fds[0];
}

static bool wait_readable(int fd)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };

	return poll(&pfd, 1, 20000) == 1; /* a hang guard, not a timing */
}

/* Reads what the child writes on the terminal until text appears. */
static void pty_expect(struct pty_child *c, const char *text)
{
	while (!strstr(c->seen->str, text)) {
		char buf[256];
		ssize_t n;

		g_assert_true(wait_readable(c->master));
		n = read(c->master, buf, sizeof(buf));
		g_assert_cmpint(n, >, 0);
		g_string_append_len(c->seen, buf, n);
	}
}

static char *pty_result(struct pty_child *c)
{
	GString *s = g_string_new(NULL);
	char buf[256];
	ssize_t n;

	while (wait_readable(c->result) &&
	       (n = read(c->result, buf, sizeof(buf))) > 0)
		g_string_append_len(s, buf, n);
	return g_string_free(s, FALSE);
}

static void pty_finish(struct pty_child *c)
{
	char buf[256];
	ssize_t n;

	/* Collect what is left on the terminal without blocking. */
	g_assert_cmpint(fcntl(c->master, F_SETFL, O_NONBLOCK), ==, 0);
	while ((n = read(c->master, buf, sizeof(buf))) > 0)
		g_string_append_len(c->seen, buf, n);
	close(c->result);
	close(c->slave);
	close(c->master);
	g_string_free(c->seen, TRUE);
}

static bool slave_echo(const struct pty_child *c)
{
	struct termios t;

	g_assert_cmpint(tcgetattr(c->slave, &t), ==, 0);
	return (t.c_lflag & ECHO) != 0;
}

static void test_prompt(void)
{
	struct pty_child c;
	g_autofree char *res = NULL;
	int status;

	pty_start(&c, true); /* checks that echo starts on */
	pty_expect(&c, "Password for me@mail.example.org: ");
	g_assert_false(slave_echo(&c)); /* off while asking */
	g_assert_cmpint(write(c.master, SECRET "\n", strlen(SECRET) + 1), ==,
			(ssize_t)strlen(SECRET) + 1);
	res = pty_result(&c);
	g_assert_cmpstr(res, ==, "OK:" SECRET);
	g_assert_cmpint(waitpid(c.pid, &status, 0), ==, c.pid);
	g_assert_true(WIFEXITED(status));
	g_assert_cmpint(WEXITSTATUS(status), ==, 0);
	g_assert_true(slave_echo(&c)); /* restored */
	pty_finish(&c);
}

static void test_prompt_empty(void)
{
	struct pty_child c;
	g_autofree char *res = NULL;
	int status;

	pty_start(&c, true);
	pty_expect(&c, "Password for me@mail.example.org: ");
	g_assert_cmpint(write(c.master, "\n", 1), ==, 1);
	res = pty_result(&c);
	g_assert_cmpstr(res, ==, "ERR:empty password from the terminal");
	g_assert_cmpint(waitpid(c.pid, &status, 0), ==, c.pid);
	g_assert_true(slave_echo(&c));
	pty_finish(&c);
}

static void test_prompt_signal(void)
{
	struct pty_child c;
	int status;

	pty_start(&c, true);
	pty_expect(&c, "Password for me@mail.example.org: ");
	g_assert_false(slave_echo(&c));
	g_assert_cmpint(kill(c.pid, SIGINT), ==, 0);
	g_assert_cmpint(waitpid(c.pid, &status, 0), ==, c.pid);
	/* The default action still happens, after echo is back. */
	g_assert_true(WIFSIGNALED(status));
	g_assert_cmpint(WTERMSIG(status), ==, SIGINT);
	g_assert_true(slave_echo(&c));
	pty_finish(&c);
}

static void test_prompt_no_tty(void)
{
	struct pty_child c;
	g_autofree char *res = NULL;
	int status;

	pty_start(&c, false);
	res = pty_result(&c);
	g_assert_cmpstr(res, ==,
			"ERR:no password given and no terminal to ask for it: "
			"use --password-command, --password-file or "
			"IMAPFS_PASSWORD");
	g_assert_cmpint(waitpid(c.pid, &status, 0), ==, c.pid);
	g_assert_true(WIFEXITED(status));
	g_assert_cmpint(WEXITSTATUS(status), ==, 0);
	pty_finish(&c);
}

int main(int argc, char **argv)
{
	GError *error = NULL;
	int r;

	g_test_init(&argc, &argv, NULL);
	g_unsetenv("IMAPFS_PASSWORD");
	tmpdir = g_dir_make_tmp("imapfs-test-password-XXXXXX", &error);
	g_assert_no_error(error);

	g_test_add_func("/password/order", test_password_order);
	g_test_add_func("/password/command", test_password_command);
	g_test_add_func("/password/file", test_password_file);
	g_test_add_func("/password/file-mode", test_password_file_mode);
	g_test_add_func("/password/prompt", test_prompt);
	g_test_add_func("/password/prompt-empty", test_prompt_empty);
	g_test_add_func("/password/prompt-signal", test_prompt_signal);
	g_test_add_func("/password/prompt-no-tty", test_prompt_no_tty);
	r = g_test_run();

	test_remove_tree(tmpdir);
	g_free(tmpdir);
	return r;
}
