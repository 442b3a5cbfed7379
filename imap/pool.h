/* imap/pool.h: a bounded pool of IMAP connections, each driven by a thread
 * of its own, and a queue of jobs.
 *
 * A caller submits a job (a function to run on a logged-in connection,
 * with a folder EXAMINEd first when one is named) and waits for it. Jobs for
 * a folder go preferably to a connection that has it selected already.
 * Connections are opened lazily, one login at a time. A connection that
 * breaks or stays silent for half the timeout under a job is dropped and
 * the job runs once more on a fresh one. While a fresh connection cannot
 * be made, jobs fail at once with -EIO, and the pool retries with backoff
 * by itself; while the server refuses the password, they fail at once
 * with -EACCES and the pool logs in again only when the password changes
 * (see imap_pool_retry_login()). A caller never waits longer than about
 * one timeout without the pool making progress.
 */
#pragma once

#include <glib.h>
#include <stdbool.h>

#include "imap/conn.h"

typedef struct ImapPool ImapPool;

/* Runs on a pool thread. conn is logged in; when the job named a folder it
 * is EXAMINEd and state describes it. Return 0 or -errno, setting error
 * for a message worth logging. A job may run twice when the connection
 * broke under it the first time, so it must be idempotent. */
typedef int (*ImapJobFn)(ImapConn *conn, const ImapMailboxState *state,
			 void *data, GError **error);

/* account is copied, but the strings it points to must outlive the pool,
 * except the password, which the pool copies (and replaces when
 * account->reread_password gives a new one; with account->login_secret,
 * the pool asks it for a fresh secret before every login). first_conn (may be
 * NULL) is an already open connection to adopt. */
ImapPool *imap_pool_new(const ImapAccount *account, unsigned size,
			ImapConn *first_conn);
/* Stops the threads (jobs still queued fail with -ESHUTDOWN), logs out. */
void imap_pool_free(ImapPool *pool);

/* Run fn on a pool connection and wait for it. Returns fn's result, -EIO
 * when the server is known to be unreachable (the job was not run), or
 * -ESHUTDOWN; error says why. On all of these the caller owns data again.
 * When the pool made no progress within the timeout the caller stops
 * waiting: -ETIMEDOUT, and the pool keeps data and frees it with free_data
 * (may be NULL) once the job is over. */
int imap_pool_run(ImapPool *pool, const char *folder, ImapJobFn fn, void *data,
		  GDestroyNotify free_data, GError **error);

/* Queue fn without waiting (prefetch). Low priority: it runs only when no
 * waited-for job is queued. The pool owns data and frees it with free_data
 * (also when the job is dropped). */
void imap_pool_submit(ImapPool *pool, const char *folder, ImapJobFn fn,
		      void *data, GDestroyNotify free_data);

/* A connection of the caller's own (the watcher's IDLE), opened by the
 * pool's rules: the current password, one login at a time, nothing while
 * the server is down or refuses the password. NULL with error set. */
ImapConn *imap_pool_connect(ImapPool *pool, GError **error);

/* Let logins that a refused password suspended be tried again now (the
 * password source is read first). Async-signal-safe: for SIGHUP. */
void imap_pool_retry_login(ImapPool *pool);

/* Mounted offline: the server could not be reached (reason) when the pool
 * was made. Jobs fail at once with -EIO until the first backoff has
 * passed; then the pool tries again by its usual rules (a job or the
 * watcher's connection asks) and logs when the server answers. */
void imap_pool_start_down(ImapPool *pool, const char *reason);
/* --offline: never connect; every job and connection fails at once with
 * -EIO. For good: there is no way back online but a remount. */
void imap_pool_stay_offline(ImapPool *pool);
