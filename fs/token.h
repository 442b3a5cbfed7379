/* fs/token.h: the account's OAuth 2.0 access tokens, from --token-command
 * or from a refresh token exchanged by imapfs itself; and --authorize,
 * which obtains that refresh token by the device authorization grant. */
#pragma once

#include <glib.h>
#include <stdbool.h>

#include "fs/options.h"

typedef struct FsToken FsToken;

/* Whether opts sign in with OAuth: a token source (or part of one: a
 * client id) is configured and --auth is auto, xoauth2 or oauthbearer. */
bool fs_token_configured(const FsOptions *opts);

/* The token source of opts (which must outlive it), with the provider's
 * endpoints filled in. NULL with error set when it is incomplete or an
 * endpoint is not https. */
FsToken *fs_token_new(const FsOptions *opts, GError **error);
void fs_token_free(FsToken *token);

/* An access token: the one in memory while it is valid, else a new one.
 * A secret to wipe and g_free, or NULL with error set in the IMAP_ERROR
 * domain: IMAP_ERROR_AUTH when the source refused, IMAP_ERROR_CONNECT
 * when the authorization server did not answer. Safe from any thread. */
char *fs_token_get(FsToken *token, GError **error);

/* Forget the token in memory (the server refused it) and get a new one;
 * as fs_token_get(). */
char *fs_token_refetch(FsToken *token, GError **error);

/* --authorize: run the device authorization grant, print what the user
 * must do on stdout, poll, save the refresh token. 0, or -1 with error
 * set. */
int fs_token_authorize(const FsOptions *opts, GError **error);
