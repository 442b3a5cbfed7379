/* imap/status.h: the meaning of server statuses and the showable part of
 * command lines (internal to imap/; pure functions). imap_refusal_errno()
 * and imap_text_is_throttling(), declared in conn.h, live in status.c.
 */
#pragma once

#include <glib.h>
#include <stdbool.h>

#include "imap/conn.h"

/* The one mapping of a tagged NO or BAD to errno, by its response code:
 * -EACCES for refused credentials ([AUTHENTICATIONFAILED],
 * [AUTHORIZATIONFAILED], [EXPIRED]), -EAGAIN for a busy server
 * ([UNAVAILABLE], [LIMIT], [INUSE]), -EIO otherwise. With login (the
 * command was LOGIN or AUTHENTICATE), a refusal is -EACCES unless the
 * server says it is busy, by code or in words: then -EAGAIN. */
int imap_status_errno(const ImapResponse *r, bool login);

/* True for LOGIN and AUTHENTICATE lines, which carry credentials. */
bool imap_status_is_login(const char *line);

/* The name of the command in line, for messages: its first word, and the
 * second after UID or AUTHENTICATE. g_free the result. */
char *imap_status_command_name(const char *line);

/* Log for -d: a response without literal contents; a command with the
 * credentials of LOGIN and AUTHENTICATE redacted. */
void imap_status_log_response(unsigned conn_id, const ImapResponse *r);
void imap_status_log_command(unsigned conn_id, const char *tag,
			     const char *line);
/* A response as one line for the log: the tag, the status word or the
 * name, the code, the arguments (literals by their size) and the text,
 * cut at 200 bytes. g_free the result. */
char *imap_status_format_response(const ImapResponse *r);
