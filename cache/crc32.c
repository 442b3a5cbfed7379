/* cache/crc32.c: CRC-32 and CRC-32C in software, sliced by 8 (about a byte
 * per cycle), and CRC-32C with the SSE 4.2 instruction where the CPU has it
 * (several times faster: bodies are checked on their first read). */
#include "cache/crc32.h"

#include <glib.h>

#define POLY_IEEE 0xEDB88320u
#define POLY_CASTAGNOLI 0x82F63B78u

typedef struct {
	uint32_t t[8][256];
} CrcTables;

static void build(CrcTables *c, uint32_t poly)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t v = i;

		for (int k = 0; k < 8; k++)
			v = (v & 1) ? (v >> 1) ^ poly : v >> 1;
		c->t[0][i] = v;
	}
	for (uint32_t i = 0; i < 256; i++)
		for (int k = 1; k < 8; k++)
			c->t[k][i] = (c->t[k - 1][i] >> 8) ^
				     c->t[0][c->t[k - 1][i] & 0xff];
}

static const CrcTables *tables(int which)
{
	static CrcTables ieee, castagnoli;
	static gsize done;

	if (g_once_init_enter(&done)) {
		build(&ieee, POLY_IEEE);
		build(&castagnoli, POLY_CASTAGNOLI);
		g_once_init_leave(&done, 1);
	}
	return which ? &castagnoli : &ieee;
}

static uint32_t sliced(const CrcTables *c, uint32_t start, const uint8_t *p,
		       size_t len)
{
	uint32_t v = start ^ 0xFFFFFFFFu;

	while (len >= 8) {
		uint32_t lo = v ^ ((uint32_t)p[0] | (uint32_t)p[1] << 8 |
				   (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24);
		uint32_t hi = (uint32_t)p[4] | (uint32_t)p[5] << 8 |
			      (uint32_t)p[6] << 16 | (uint32_t)p[7] << 24;

		v = c->t[7][lo & 0xff] ^ c->t[6][(lo >> 8) & 0xff] ^
		    c->t[5][(lo >> 16) & 0xff] ^ c->t[4][lo >> 24] ^
		    c->t[3][hi & 0xff] ^ c->t[2][(hi >> 8) & 0xff] ^
		    c->t[1][(hi >> 16) & 0xff] ^ c->t[0][hi >> 24];
		p += 8;
		len -= 8;
	}
	while (len--)
		v = c->t[0][(v ^ *p++) & 0xff] ^ (v >> 8);
	return v ^ 0xFFFFFFFFu;
}

uint32_t cache_crc32(const void *p, size_t len)
{
	return sliced(tables(0), 0, p, len);
}

uint32_t cache_crc32_update(uint32_t crc, const void *p, size_t len)
{
	return sliced(tables(0), crc, p, len);
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <string.h>

__attribute__((target("sse4.2"))) static uint32_t crc32c_sse42(const uint8_t *p,
							       size_t len)
{
	uint64_t v = 0xFFFFFFFFu;

	while (len >= 8) {
		uint64_t w;

		memcpy(&w, p, 8);
		v = __builtin_ia32_crc32di(v, w);
		p += 8;
		len -= 8;
	}
	while (len--)
		v = __builtin_ia32_crc32qi((uint32_t)v, *p++);
	return (uint32_t)v ^ 0xFFFFFFFFu;
}

uint32_t cache_crc32c(const void *p, size_t len)
{
	static int has_sse42 = -1;

	if (has_sse42 < 0)
		has_sse42 = __builtin_cpu_supports("sse4.2") ? 1 : 0;
	if (has_sse42)
		return crc32c_sse42(p, len);
	return sliced(tables(1), 0, p, len);
}
#else
uint32_t cache_crc32c(const void *p, size_t len)
{
	return sliced(tables(1), 0, p, len);
}
#endif
