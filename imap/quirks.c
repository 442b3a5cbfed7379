/* imap/quirks.c: per-server switches for extensions (see imap/quirks.h).
 *
 * Pure functions over constant tables; the only state is a flag per table
 * entry so that each is logged once (atomic, no lock).
 */
#include "imap/quirks.h"

#include <string.h>

typedef struct {
	const char *host_suffix; /* matches host ending in it, or NULL */
	const char *greeting;    /* a word of the greeting, or NULL */
	const char *disable;     /* space-separated capabilities */
	const char *why;
} Quirk;

static const Quirk quirks[] = {
	{ "mail.me.com", "iSCREAM", "QRESYNC",
	  "iCloud advertises QRESYNC but answers it wrongly" },
};

static int logged[G_N_ELEMENTS(quirks)];

static bool host_matches(const char *host, const char *suffix)
{
	size_t h, s;

	if (!host || !suffix)
		return false;
	h = strlen(host);
	s = strlen(suffix);
	return h >= s && g_ascii_strcasecmp(host + h - s, suffix) == 0 &&
	       (h == s || host[h - s - 1] == '.');
}

static void add_words(GPtrArray *out, const char *list)
{
	g_auto(GStrv) words = NULL;

	if (!list)
		return;
	words = g_strsplit_set(list, " ,:+\t", -1);
	for (char **w = words; *w; w++)
		if (**w)
			g_ptr_array_add(out, g_ascii_strup(*w, -1));
}

char **imap_quirks_disabled(const char *user_list, const char *host,
			    const char *greeting)
{
	GPtrArray *out = g_ptr_array_new();

	add_words(out, user_list);
	for (size_t i = 0; i < G_N_ELEMENTS(quirks); i++) {
		const Quirk *q = &quirks[i];

		if (!host_matches(host, q->host_suffix) &&
		    !(greeting && q->greeting && strstr(greeting, q->greeting)))
			continue;
		add_words(out, q->disable);
		if (g_atomic_int_compare_and_exchange(&logged[i], 0, 1))
			g_message("not using %s with this server: %s",
				  q->disable, q->why);
	}
	g_ptr_array_add(out, NULL);
	return (char **)g_ptr_array_free(out, FALSE);
}

static bool name_covers(const char *name, const char *cap)
{
	size_t n = strlen(name);

	return g_ascii_strncasecmp(cap, name, n) == 0 &&
	       (cap[n] == '\0' || cap[n] == '=');
}

bool imap_quirks_cap_disabled(char *const *names, const char *cap)
{
	for (char *const *n = names; n && *n; n++) {
		if (name_covers(*n, cap))
			return true;
		if (strcmp(*n, "CONDSTORE") == 0 &&
		    g_ascii_strcasecmp(cap, "QRESYNC") == 0)
			return true;
	}
	return false;
}

bool imap_quirks_metered(const char *host, bool gmail_ext)
{
	return gmail_ext || host_matches(host, "gmail.com") ||
	       host_matches(host, "googlemail.com");
}
