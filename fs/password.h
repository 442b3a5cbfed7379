/* fs/password.h: the account's password, from --password-command,
 * --password-file, $IMAPFS_PASSWORD or a prompt on the terminal. Every
 * password returned is a new string the caller owns and must give back to
 * fs_password_free(), which wipes it. */
#pragma once

#include <glib.h>
#include <stdbool.h>

#include "fs/options.h"

/* The password, from --password-command, --password-file, $IMAPFS_PASSWORD,
 * or a prompt on the terminal (echo off), in that order. Returns NULL with
 * error set when none can be had. The prompt installs signal handlers for
 * its duration: call it before starting threads. */
char *fs_password_get(const FsOptions *opts, GError **error);

/* The password again, for a mount whose password the server refused:
 * from --password-command or --password-file only (never a prompt: the
 * daemon may have no terminal). NULL with error set otherwise. Safe from any
 * thread (it touches no global state). */
char *fs_password_reread(const FsOptions *opts, GError **error);

/* Whether fs_password_reread() has a source to read. */
bool fs_password_can_reread(const FsOptions *opts);

/* The first line of what cmd (run with /bin/sh -c) prints: a secret such
 * as an access token, a refresh token or a client secret. what names the
 * command in errors ("token command"). NULL with error set. Safe from
 * any thread. */
char *fs_password_run_command(const char *cmd, const char *what,
			      GError **error);

/* Wipe and free; NULL is allowed. */
void fs_password_free(char *password);
