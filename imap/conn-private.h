/* imap/conn-private.h: what imap/auth.c needs of a connection beyond the
 * public API (internal to imap/).
 *
 * Same rules as conn.h: one thread at a time per connection.
 */
#pragma once

#include <glib.h>

#include "imap/conn.h"

/* Answers a continuation request ("+ ...") to the command in flight, such
 * as a SASL challenge. Returns the line to send without CRLF ("" to send
 * an empty line, which cancels nothing: it is an empty SASL response), or
 * NULL when no answer fits (the connection then fails with a protocol
 * error). The caller wipes and frees the line: it may hold credentials. */
typedef char *(*ImapContinueFn)(void *data, const ImapResponse *r);

/* Like imap_conn_command() for one literal line (no printf), with cont
 * (may be NULL) answering continuation requests. The line is copied and
 * the copy wiped afterwards. Returns 0, the errno of a refusal (a refused
 * LOGIN or AUTHENTICATE is -EACCES, or -EAGAIN when the server says it is
 * busy), or -errno on a broken connection; error is set on failure. */
int imap_conn_run(ImapConn *conn, const char *line, ImapContinueFn cont,
		  void *cont_data, GError **error);

/* The connection's copy of the account (host, user, password). */
const ImapAccount *imap_conn_account(const ImapConn *conn);

/* Like imap_conn_command() for a command sent in pieces: chunks[0] is the
 * line, and each continuation request the server sends is answered with
 * the next chunk (synchronising literals: every chunk but the last ends
 * with "{N}"). A continuation request past the last chunk breaks the
 * connection (a protocol error). */
int imap_conn_command_chunks(ImapConn *conn, char **chunks, size_t n,
			     ImapUntaggedFn fn, void *user_data,
			     GError **error);

/* While a pipeline runs (in its untagged callback): the index of the
 * command whose tag is tag, or with tag NULL of the oldest command still
 * waiting for its answer; -1 when there is none. */
int imap_conn_batch_index(const ImapConn *conn, const char *tag);

/* Commands sent through imap_conn_pipeline() changed the selected
 * mailbox: forget it, so that the next imap_conn_examine() sends EXAMINE. */
void imap_conn_forget_selected(ImapConn *conn);
