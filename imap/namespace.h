/* imap/namespace.h: the personal namespace (RFC 2342 NAMESPACE). */
#pragma once

#include <glib.h>
#include <stdbool.h>

#include "imap/conn.h"
#include "imap/parser.h"

/* The first personal namespace: prefix ("" when the server has none, or no
 * NAMESPACE) and hierarchy delimiter ('\0' for NIL). */
typedef struct {
	char *prefix;
	char delimiter;
} ImapNamespace;

void imap_namespace_clear(ImapNamespace *ns);
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC(ImapNamespace, imap_namespace_clear)

/* From an untagged "* NAMESPACE personal other shared" response: fills ns
 * with the first personal namespace. false (ns untouched) when r is not a
 * NAMESPACE response or is malformed: a prefix with a NUL byte, a
 * delimiter longer than one byte. */
bool imap_namespace_parse(const ImapResponse *r, ImapNamespace *ns);

/* NAMESPACE on a logged-in connection when the server offers it; without
 * the capability, or when the answer names no personal namespace, ns gets
 * the empty prefix. 0 or -errno. */
int imap_namespace_get(ImapConn *conn, ImapNamespace *ns, GError **error);

/* Where a folder shows when its namespace is flattened: name without the
 * personal prefix, or NULL when name does not start with it, is the prefix
 * alone, has another delimiter, or the prefix is empty or does not end in
 * the delimiter. Used for the top-level layout. */
const char *imap_namespace_strip(const ImapNamespace *ns, const char *name,
				 char delimiter);
