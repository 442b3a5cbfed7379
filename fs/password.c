/* fs/password.c: the password sources: a command's output, a file, the
 * environment, a prompt on the terminal, and reading the first two again
 * when the server refused the password (the pool asks, from its threads,
 * after SIGHUP or a refused login).
 *
 * No global state but the prompt's: it installs process-wide signal
 * handlers for its duration so that the terminal's echo comes back whatever
 * happens, so ask before starting threads. Every buffer that held a
 * password is wiped before it is freed.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* ppoll */
#endif

#include "fs/password.h"

#include <errno.h>
#include <fcntl.h>
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
#define PASSWORD_MAX 16384

/* Reads the first line of fd into buf (size PASSWORD_MAX), without
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
		size_t room =
		    eol || too_long ? sizeof(scratch) : PASSWORD_MAX - 1 - n;
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
				too_long = n == PASSWORD_MAX - 1;
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
		fs_options_error(error, "empty password from %s", source);
		return NULL;
	}
	if (memchr(line, '\0', len) || memchr(line, '\r', len) ||
	    memchr(line, '\n', len)) {
		fs_options_error(
		    error, "the password from %s contains a NUL or line break",
		    source);
		return NULL;
	}
	pw = g_malloc(len + 1);
	memcpy(pw, line, len);
	pw[len] = '\0';
	return pw;
}

static char *password_from_command(const char *cmd, const char *what,
				   GError **error)
{
	const char *argv[] = { "/bin/sh", "-c", cmd, NULL };
	g_autofree char *source = g_strconcat("the ", what, NULL);
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
		fs_options_error(error, "%s '%s': %s", what, cmd, err->message);
		return NULL;
	}
#ifdef SYS_pidfd_open
	pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
#endif
	/* Without a pidfd (old kernel, valgrind) we cannot tell when the
	 * command is done, so stop at the first line; more output then dies
	 * of SIGPIPE, which is not the command's failure. */
	early = pidfd < 0;
	buf = g_malloc(PASSWORD_MAX);
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
		fs_options_error(error, "%s '%s': waitpid: %s", what, cmd,
				 g_strerror(wait_err));
	else if (!our_sigpipe && WIFEXITED(status) && WEXITSTATUS(status))
		fs_options_error(error, "%s '%s' exited with status %d", what,
				 cmd, WEXITSTATUS(status));
	else if (!our_sigpipe && WIFSIGNALED(status))
		fs_options_error(error, "%s '%s' was killed by signal %d", what,
				 cmd, WTERMSIG(status));
	else if (len == -E2BIG)
		fs_options_error(error,
				 "%s '%s': first line is longer than "
				 "%d bytes",
				 what, cmd, PASSWORD_MAX - 1);
	else if (len < 0)
		fs_options_error(error, "%s '%s': %s", what, cmd,
				 g_strerror((int)-len));
	else
		pw = password_finish(buf, (size_t)len, source, error);
	explicit_bzero(buf, PASSWORD_MAX);
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
	buf = g_malloc(PASSWORD_MAX);
	len = read_first_line(fd, buf, false, -1);
	close(fd);
	source = g_strdup_printf("password file %s", path);
	if (len == -E2BIG)
		fs_options_error(
		    error,
		    "password file %s: first line is longer than %d "
		    "bytes",
		    path, PASSWORD_MAX - 1);
	else if (len < 0)
		fs_options_error(error, "password file %s: %s", path,
				 g_strerror((int)-len));
	else
		pw = password_finish(buf, (size_t)len, source, error);
	explicit_bzero(buf, PASSWORD_MAX);
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
		} else if (n < PASSWORD_MAX - 1) {
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
		fs_options_error(
		    error, "no password given and no terminal to ask for it: "
			   "use --password-command, --password-file or "
			   "IMAPFS_PASSWORD");
		return NULL;
	}
	prompt = g_strdup_printf("Password for %s@%s: ", opts->server.user,
				 opts->server.host);
	buf = g_malloc(PASSWORD_MAX);
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
		fs_options_error(error, "password prompt interrupted");
	else if (len == -E2BIG)
		fs_options_error(error, "password longer than %d bytes",
				 PASSWORD_MAX - 1);
	else if (len < 0)
		fs_options_error(error, "password prompt on /dev/tty: %s",
				 g_strerror((int)-len));
	else
		pw = password_finish(buf, (size_t)len, "the terminal", error);
	explicit_bzero(buf, PASSWORD_MAX);
	g_free(buf);
	return pw;
}

char *fs_password_get(const FsOptions *opts, GError **error)
{
	const char *env;

	if (opts->password_command)
		return password_from_command(opts->password_command,
					     "password command", error);
	if (opts->password_file)
		return password_from_file(opts->password_file, error);
	env = g_getenv("IMAPFS_PASSWORD");
	if (env && *env)
		return password_finish(env, strlen(env), "IMAPFS_PASSWORD",
				       error);
	return password_from_tty(opts, error);
}

char *fs_password_reread(const FsOptions *opts, GError **error)
{
	if (opts->password_command)
		return password_from_command(opts->password_command,
					     "password command", error);
	if (opts->password_file)
		return password_from_file(opts->password_file, error);
	fs_options_error(error, "the password came from the environment or a "
				"prompt and cannot be read again");
	return NULL;
}

bool fs_password_can_reread(const FsOptions *opts)
{
	return opts->password_command || opts->password_file;
}

void fs_password_free(char *password)
{
	if (!password)
		return;
	explicit_bzero(password, strlen(password));
	g_free(password);
}

char *fs_password_run_command(const char *cmd, const char *what, GError **error)
{
	return password_from_command(cmd, what, error);
}
