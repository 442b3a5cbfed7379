/* imap/sasl.c: the SASL messages of XOAUTH2 and OAUTHBEARER (RFC 7628):
 * the initial responses, and the status of the JSON error a server sends
 * back after refusing a token.
 *
 * Pure functions: no I/O, no state, no locking. Every buffer that held a
 * token is wiped before it is freed; the caller wipes the result.
 */
#include "imap/sasl.h"

#include <json-glib/json-glib.h>
#include <string.h>

/* Base64 of a GString, which is wiped and freed. */
static char *encode_and_wipe(GString *raw)
{
	char *b64 = g_base64_encode((const guchar *)raw->str, raw->len);

	explicit_bzero(raw->str, raw->allocated_len);
	g_string_free(raw, TRUE);
	return b64;
}

char *imap_sasl_xoauth2(const char *user, const char *token)
{
	/* Room for all of it: no reallocation leaves a copy behind. */
	GString *raw = g_string_sized_new(strlen(user) + strlen(token) + 32);

	g_string_append_printf(raw, "user=%s\001auth=Bearer %s\001\001", user,
			       token);
	return encode_and_wipe(raw);
}

char *imap_sasl_oauthbearer(const char *user, const char *host, unsigned port,
			    const char *token)
{
	GString *raw = g_string_sized_new(3 * strlen(user) + strlen(host) +
					  strlen(token) + 64);

	g_string_append(raw, "n,a=");
	for (const char *p = user; *p; p++) {
		if (*p == ',')
			g_string_append(raw, "=2C");
		else if (*p == '=')
			g_string_append(raw, "=3D");
		else
			g_string_append_c(raw, *p);
	}
	g_string_append_printf(raw,
			       ",\001host=%s\001port=%u\001auth=Bearer "
			       "%s\001\001",
			       host, port, token);
	return encode_and_wipe(raw);
}

char *imap_sasl_failure_status(const char *b64)
{
	g_autoptr(JsonParser) parser = NULL;
	g_autofree guchar *raw = NULL;
	JsonNode *root, *status;
	const char *s;
	gsize len = 0;

	if (!b64 || !*b64 || strlen(b64) > 8192)
		return NULL;
	raw = g_base64_decode(b64, &len);
	if (!raw || len == 0 || memchr(raw, '\0', len))
		return NULL;
	parser = json_parser_new();
	if (!json_parser_load_from_data(parser, (const char *)raw, (gssize)len,
					NULL))
		return NULL;
	root = json_parser_get_root(parser);
	if (!root || !JSON_NODE_HOLDS_OBJECT(root))
		return NULL;
	status = json_object_get_member(json_node_get_object(root), "status");
	if (!status || !JSON_NODE_HOLDS_VALUE(status))
		return NULL;
	if (json_node_get_value_type(status) == G_TYPE_INT64)
		return g_strdup_printf("%" G_GINT64_FORMAT,
				       json_node_get_int(status));
	if (json_node_get_value_type(status) != G_TYPE_STRING)
		return NULL;
	s = json_node_get_string(status);
	if (!s || !*s || strlen(s) > 64)
		return NULL;
	for (const char *p = s; *p; p++)
		if (!g_ascii_isprint(*p))
			return NULL;
	return g_strdup(s);
}
