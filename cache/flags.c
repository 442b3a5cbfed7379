/* cache/flags.c: the process-wide keyword table and flag strings (see
 * cache/flags.h).
 *
 * Locking: table_lock guards by_name and by_id. Entries are never removed,
 * so a pointer handed out stays valid without the lock.
 */
#include "cache/flags.h"

#include <string.h>

static GMutex table_lock;
static GHashTable *by_name; /* interned string -> id */
static GPtrArray *by_id;    /* id -> interned string; [0] is "" */

uint16_t cache_keywords_intern(const char *kw)
{
	gpointer found;
	uint16_t id;

	if (!kw || !*kw)
		return CACHE_KEYWORDS_NONE;
	if (strlen(kw) > CACHE_KEYWORDS_MAX_LEN)
		return CACHE_KEYWORDS_OVERFLOW;
	g_mutex_lock(&table_lock);
	if (!by_name) {
		by_name = g_hash_table_new(g_str_hash, g_str_equal);
		by_id = g_ptr_array_new();
		g_ptr_array_add(by_id, (gpointer) "");
	}
	if (g_hash_table_lookup_extended(by_name, kw, NULL, &found)) {
		id = (uint16_t)GPOINTER_TO_UINT(found);
	} else if (by_id->len > CACHE_KEYWORDS_MAX) {
		id = CACHE_KEYWORDS_OVERFLOW;
	} else {
		/* Kept for the life of the process, like the table. Not
		 * g_intern_string(): GLib leaks its quark array each time it
		 * grows, which LeakSanitizer reports. */
		const char *s = g_strdup(kw);

		id = (uint16_t)by_id->len;
		g_ptr_array_add(by_id, (gpointer)s);
		g_hash_table_insert(by_name, (gpointer)s, GUINT_TO_POINTER(id));
	}
	g_mutex_unlock(&table_lock);
	return id;
}

const char *cache_keywords_get(uint16_t id)
{
	const char *s = "";

	g_mutex_lock(&table_lock);
	if (by_id && id < by_id->len)
		s = by_id->pdata[id];
	g_mutex_unlock(&table_lock);
	return s;
}

char *cache_flags_to_string(uint8_t flags, uint16_t keywords)
{
	static const struct {
		uint8_t bit;
		const char *name;
	} names[] = {
		{ CACHE_FLAG_SEEN, "\\Seen" },
		{ CACHE_FLAG_ANSWERED, "\\Answered" },
		{ CACHE_FLAG_FLAGGED, "\\Flagged" },
		{ CACHE_FLAG_DRAFT, "\\Draft" },
		{ CACHE_FLAG_DELETED, "\\Deleted" },
	};
	GString *s = g_string_new(NULL);
	const char *kw = cache_keywords_get(keywords);

	for (size_t i = 0; i < G_N_ELEMENTS(names); i++) {
		if (!(flags & names[i].bit))
			continue;
		if (s->len)
			g_string_append_c(s, ' ');
		g_string_append(s, names[i].name);
	}
	if (*kw) {
		if (s->len)
			g_string_append_c(s, ' ');
		g_string_append(s, kw);
	}
	return g_string_free(s, FALSE);
}
