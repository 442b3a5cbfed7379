/* imap/namespace.c: the personal namespace from NAMESPACE (RFC 2342), so
 * that folders under a prefix such as "INBOX." can be shown at the top.
 *
 * Stateless; an ImapNamespace owns its prefix. The response is parsed by
 * imap/parser.c (with its limits); here only its shape is checked:
 * "* NAMESPACE ((prefix delim ext...)...) other shared", NIL allowed.
 */
#include "imap/namespace.h"

#include <errno.h>
#include <string.h>

void imap_namespace_clear(ImapNamespace *ns)
{
	g_clear_pointer(&ns->prefix, g_free);
	ns->delimiter = '\0';
}

bool imap_namespace_parse(const ImapResponse *r, ImapNamespace *ns)
{
	const ImapValue *personal, *first, *delim;
	const char *prefix, *d;
	size_t plen = 0, dlen = 0;

	if (r->kind != IMAP_RESPONSE_UNTAGGED || !r->name ||
	    strcmp(r->name, "NAMESPACE") != 0 || r->args.len < 1)
		return false;
	personal = imap_list_get(&r->args, 0);
	if (personal->type != IMAP_VALUE_NIL &&
	    personal->type != IMAP_VALUE_LIST)
		return false;
	if (personal->type == IMAP_VALUE_NIL || personal->len == 0) {
		imap_namespace_clear(ns);
		ns->prefix = g_strdup("");
		return true;
	}
	first = imap_list_get(personal, 0);
	if (!first || first->type != IMAP_VALUE_LIST || first->len < 2)
		return false;
	prefix = imap_value_get_string(imap_list_get(first, 0), &plen);
	delim = imap_list_get(first, 1);
	if (!prefix || memchr(prefix, '\0', plen))
		return false;
	d = imap_value_get_string(delim, &dlen);
	if (delim->type != IMAP_VALUE_NIL && (!d || dlen != 1 || d[0] == '\0'))
		return false;
	imap_namespace_clear(ns);
	ns->prefix = g_strndup(prefix, plen);
	ns->delimiter = d ? d[0] : '\0';
	return true;
}

static int namespace_untagged(void *user_data, ImapResponse *r)
{
	ImapNamespace *ns = user_data;

	if (!ns->prefix)
		imap_namespace_parse(r, ns);
	return 0;
}

int imap_namespace_get(ImapConn *conn, ImapNamespace *ns, GError **error)
{
	int rc = 0;

	imap_namespace_clear(ns);
	if (imap_conn_has_cap(conn, "NAMESPACE"))
		rc = imap_conn_command(conn, namespace_untagged, ns, error,
				       "NAMESPACE");
	if (!ns->prefix)
		ns->prefix = g_strdup("");
	return rc;
}

const char *imap_namespace_strip(const ImapNamespace *ns, const char *name,
				 char delimiter)
{
	size_t n = ns->prefix ? strlen(ns->prefix) : 0;

	if (n == 0 || delimiter == '\0' || delimiter != ns->delimiter ||
	    ns->prefix[n - 1] != delimiter ||
	    strncmp(name, ns->prefix, n) != 0 || name[n] == '\0')
		return NULL;
	return name + n;
}
