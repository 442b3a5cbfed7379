/* tests/unit/scripted-server.h: a tiny in-process IMAP server for unit
 * tests of imap/conn.c and imap/pool.c. It listens on 127.0.0.1 with
 * implicit TLS (a throw-away self-signed certificate: clients set
 * insecure) and follows one script per accepted connection.
 *
 * A script is a NULL-terminated array of steps:
 *   "S:text"   send text and CRLF; "$T" in text is the last client tag
 *   "R:text"   send text as is (no CRLF), e.g. half a literal
 *   "FILL:N"   send N bytes of filler, e.g. a literal's body
 *   "C:text"   read a tagged client line; without its tag it must equal
 *              text, or start with it when text ends in '*'
 *   "L:text"   read an untagged client line (a SASL answer), equal to text
 *   "CUT"      close the connection at once
 *   "STALL"    say nothing until the client goes away
 * After the last step the server answers LOGOUT and waits for the client
 * to close. Every wait of the server is bounded (5 s), so a test cannot
 * hang on it; a deviation from the script is recorded, not fatal there.
 *
 * Ownership: the server thread owns the sockets; the scripts must outlive
 * the server. scripted_server_free() joins the thread.
 */
#pragma once

#include <glib.h>
#include <stdint.h>

typedef struct ScriptedServer ScriptedServer;

/* Listen and serve the scripts (NULL-terminated) in order, one for each
 * connection accepted. */
ScriptedServer *scripted_server_new(const char *const *const *scripts);
uint16_t scripted_server_port(const ScriptedServer *srv);
/* Connections accepted so far. */
unsigned scripted_server_accepted(ScriptedServer *srv);
/* Wait (bounded) for the server thread to end; the first deviation from
 * the scripts, or NULL. g_free the result. */
char *scripted_server_finish(ScriptedServer *srv);
void scripted_server_free(ScriptedServer *srv);
