/* fs/log.c: GLib and libfuse log messages to stderr or syslog.
 * State is set once at start-up before any thread exists. */
#include "fs/log.h"

#include <fuse_log.h>
#include <glib.h>
#include <stdio.h>
#include <syslog.h>

static bool log_debug;
static bool log_syslog;

static int syslog_level(GLogLevelFlags level)
{
	if (level & (G_LOG_LEVEL_ERROR | G_LOG_LEVEL_CRITICAL))
		return LOG_ERR;
	if (level & G_LOG_LEVEL_WARNING)
		return LOG_WARNING;
	if (level & (G_LOG_LEVEL_MESSAGE | G_LOG_LEVEL_INFO))
		return LOG_INFO;
	return LOG_DEBUG;
}

static gint64 log_start_us;

static void emit(int prio, const char *mark, const char *msg)
{
	if (log_syslog) {
		syslog(prio, "%s%s", mark, msg);
	} else if (log_debug) {
		/* -d: seconds since start, to read a session's timing. */
		gint64 ms = (g_get_monotonic_time() - log_start_us) / 1000;

		fprintf(stderr, "imapfs: %4" G_GINT64_FORMAT ".%03d %s%s\n",
			ms / 1000, (int)(ms % 1000), mark, msg);
	} else {
		fprintf(stderr, "imapfs: %s%s\n", mark, msg);
	}
}

/* A critical is a bug (a failed g_return_if_fail, in imapfs or a
 * library): mark it so that it stands out in a log and the tests can
 * fail on it. */
static const char *level_mark(GLogLevelFlags level)
{
	if (level & G_LOG_LEVEL_ERROR)
		return "fatal error: ";
	if (level & G_LOG_LEVEL_CRITICAL)
		return "critical: ";
	return "";
}

static GLogWriterOutput writer(GLogLevelFlags level, const GLogField *fields,
			       gsize n_fields, gpointer user_data)
{
	const char *msg = NULL, *domain = NULL;
	g_autofree char *text = NULL;

	if ((level & G_LOG_LEVEL_DEBUG) && !log_debug)
		return G_LOG_WRITER_HANDLED;
	for (gsize i = 0; i < n_fields; i++) {
		if (g_strcmp0(fields[i].key, "MESSAGE") == 0)
			msg = fields[i].value;
		else if (g_strcmp0(fields[i].key, "GLIB_DOMAIN") == 0)
			domain = fields[i].value;
	}
	if (!msg)
		return G_LOG_WRITER_HANDLED;
	/* Messages of libraries (GLib, GIO) name where they come from. */
	if (domain && g_strcmp0(domain, G_LOG_DOMAIN) != 0)
		msg = text = g_strdup_printf("%s: %s", domain, msg);
	emit(syslog_level(level), level_mark(level), msg);
	return G_LOG_WRITER_HANDLED;
}

static void fuse_logger(enum fuse_log_level level, const char *fmt, va_list ap)
    G_GNUC_PRINTF(2, 0);

static void fuse_logger(enum fuse_log_level level, const char *fmt, va_list ap)
{
	g_autofree char *msg = g_strdup_vprintf(fmt, ap);

	if (level >= FUSE_LOG_DEBUG && !log_debug)
		return;
	g_strchomp(msg);
	emit((int)level, "", msg);
}

void fs_log_init(bool debug)
{
	log_debug = debug;
	log_start_us = g_get_monotonic_time();
	if (debug)
		g_setenv("G_MESSAGES_DEBUG", "imapfs", TRUE);
	g_log_set_writer_func(writer, NULL, NULL);
	fuse_set_log_func(fuse_logger);
}

void fs_log_to_syslog(void)
{
	openlog("imapfs", LOG_PID, LOG_DAEMON);
	log_syslog = true;
}
