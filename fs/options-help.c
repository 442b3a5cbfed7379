/* fs/options-help.c: the text of --help and --version. Kept apart from the
 * parser so that each feature's lines stay in one place; nothing here
 * parses or keeps state.
 */
#ifndef IMAPFS_VERSION
#define IMAPFS_VERSION "0.0.0"
#endif

#include "fs/options-help.h"

#include <fuse_lowlevel.h>
#include <glib.h>
#include <openssl/crypto.h>
#include <stdio.h>

static void print_oauth_help(void)
{
	printf("OAuth 2.0 (Gmail, Microsoft 365; see imapfs(1)):\n"
	       "    --auth=MECH              auto (default), plain, login, "
	       "xoauth2 or\n"
	       "                             oauthbearer\n"
	       "    --token-command=CMD      CMD prints an OAuth access "
	       "token\n"
	       "    --provider=NAME          google or microsoft: the "
	       "endpoints and scope\n"
	       "    --oauth-client-id=ID     the OAuth client (application) "
	       "id\n"
	       "    --oauth-client-secret-command=CMD  prints the client "
	       "secret\n"
	       "    --oauth-token-url=URL    token endpoint (https)\n"
	       "    --oauth-device-url=URL   device authorization endpoint\n"
	       "    --oauth-scope=SCOPE      scopes, separated by spaces\n"
	       "    --oauth-refresh-token-command=CMD  prints the refresh "
	       "token (default:\n"
	       "                             a file under "
	       "$XDG_DATA_HOME/imapfs/oauth)\n"
	       "    --authorize URL|ACCOUNT  sign in on a web page (device "
	       "grant), save\n"
	       "                             the refresh token, and exit\n"
	       "\n");
}

static void print_help_notes(void);

/* --offline and --nonempty in --help, and the blank line after the
 * options. */
static void print_offline_help(void)
{
	printf("    --offline                serve only what is cached; never "
	       "connect\n"
	       "                             (without it, an account with a "
	       "cache mounts\n"
	       "                             offline when the server cannot "
	       "be reached,\n"
	       "                             and goes online when it "
	       "answers)\n"
	       "    --nonempty               mount over a directory that is "
	       "not empty\n"
	       "\n");
}

/* Per-server switches (imap/quirks.c, fs/fetch.c). */
static void print_provider_help(void)
{
	printf("Servers and providers:\n"
	       "    --disable-extension=\"EXT ...\"\n"
	       "                             never use these IMAP extensions "
	       "(QRESYNC,\n"
	       "                             CONDSTORE, X-GM-EXT-1, ...; "
	       "separated by\n"
	       "                             spaces, ':' or '+')\n"
	       "    --prefetch=MODE          fetch messages before they are "
	       "read: ahead\n"
	       "                             (for sequential readers), off "
	       "(only what\n"
	       "                             is read) or auto (default: off "
	       "for Gmail,\n"
	       "                             whose downloads are capped, "
	       "else ahead)\n"
	       "\n");
}

static void print_layout_help(void)
{
	printf(
	    "Layout (see imapfs(1)):\n"
	    "    --layout=NAME            eml (default): a message is a "
	    ".eml file;\n"
	    "                             parts: a message is a directory "
	    "with\n"
	    "                             message.eml, text.txt, text.html "
	    "and its\n"
	    "                             attachments, decoded;\n"
	    "                             maildir: every folder a Maildir "
	    "(cur/ new/\n"
	    "                             tmp/) for mutt -R and notmuch\n\n");
}

void fs_options_print_help(const char *argv0)
{
	g_autofree char *prog = g_path_get_basename(argv0);

	printf(
	    "usage: %s [options] URL MOUNTPOINT\n"
	    "       %s [options] ACCOUNT [MOUNTPOINT]\n"
	    "\n"
	    "Mount an IMAP account read-only: folders are directories,\n"
	    "messages are \"<UID> <subject>.eml\" files.\n"
	    "\n"
	    "URL:\n"
	    "    imaps://USER@HOST[:PORT]  implicit TLS (default port 993)\n"
	    "    imap://USER@HOST[:PORT]   STARTTLS, required (default "
	    "port 143)\n"
	    "    Percent-encode '@' in USER: imaps://me%%40example.org@"
	    "mail.example.org\n"
	    "\n"
	    "ACCOUNT: a [group] of the config file, keys the long "
	    "options below\n(no dashes), url, mountpoint, options (-o).\n\n"
	    "Options:\n"
	    "    -h   --help              print this help and exit\n"
	    "    -V   --version           print versions and exit\n"
	    "    -f                       stay in the foreground\n"
	    "    -d                       debug log on stderr (implies -f)\n"
	    "    -o OPT[,OPT...]          mount options, see below\n"
	    "    --config=FILE            accounts (~/.config/imapfs/config)\n"
	    "    --accounts               list them, and where they are "
	    "mounted\n"
	    "    --password-command=CMD   run CMD with /bin/sh -c; the "
	    "password is\n"
	    "                             the first line of its output\n"
	    "    --password-file=FILE     the password is the first line "
	    "of FILE\n"
	    "    --cafile=FILE            trust the CA certificates in "
	    "FILE (PEM)\n"
	    "    --cache-dir=DIR          cache directory (default:\n"
	    "                             $XDG_CACHE_HOME/imapfs or "
	    "~/.cache/imapfs)\n"
	    "    --connections=N          connections to the server, "
	    "1..64 (default: 4)\n"
	    "    --timeout=SECONDS        how long a read waits for a "
	    "server that makes\n"
	    "                             no progress, 1..3600 (default: "
	    "10); a connection\n"
	    "                             silent for half of it is "
	    "replaced\n"
	    "    --insecure               do not verify the server's "
	    "certificate\n"
	    "                             or host name\n"
	    "    --cache-size=SIZE        keep at most SIZE of message "
	    "bodies (K, M, G;\n"
	    "                             least recently read go first; "
	    "default: 0,\n"
	    "                             no limit)\n"
	    "    --poll-interval=SECONDS  how often folders are checked "
	    "for new and\n"
	    "                             deleted mail (default: 60)\n"
	    "    --xattr                  flags, dates, senders... as "
	    "user.imap.* "
	    "and\n"
	    "                             user.mail.* attributes; off by "
	    "default: ls -l\n"
	    "                             then costs two round trips a file, "
	    "4-10x slower\n"
	    "    --name-format=FORMAT     {uid} then any of {date} {from} "
	    "{subject}\n"
	    "    --umask=NNN              permission bits to clear, octal "
	    "(default: 077:\n"
	    "                             messages 0600, folders 0700, "
	    "owner only;\n"
	    "                             022 gives 0644 and 0755)\n"
	    "    --uid=USER --gid=GROUP   owner and group of every file, "
	    "a number or\n"
	    "                             a name (default: the mounting "
	    "user's)\n"
	    "    --namespace=top|server   top: folders under the personal "
	    "namespace's\n"
	    "                             prefix (INBOX. on Cyrus, "
	    "Courier) beside INBOX\n"
	    "                             at the top; server: as the "
	    "server names them\n"
	    "                             (default: top)\n"
	    "    --status-interval=SECONDS  without NOTIFY, STATUS of "
	    "recently listed\n"
	    "                             folders this often, LIST every "
	    "5th (15 s at\n"
	    "                             least); 0: off (default: 3)\n"
	    "    --list-ahead=LEVELS      when a directory is read, list "
	    "its small\n"
	    "                             subfolders (500 messages at "
	    "most) this many\n"
	    "                             levels down ahead, pipelined; "
	    "0: off (default: 3)\n",
	    prog, prog);
	print_layout_help();
	print_offline_help();
	print_oauth_help();
	print_provider_help();
	print_help_notes();
}

/* The end of --help: -o, the password sources, fstab. */
static void print_help_notes(void)
{
	printf("Every long option also works as -o NAME=VALUE (-o insecure),\n"
	       "with '-' or '_' in NAME: -o password_file=FILE.\n"
	       "Other -o options go to FUSE (allow_other, max_read=N, ...;\n"
	       "see mount.fuse3(8)). The mount is always ro,noatime,\n"
	       "default_permissions; _netdev, nofail, noauto, auto, user,\n"
	       "users, rw and defaults are ignored. With allow_other, the\n"
	       "modes above decide who else may read the mail.\n"
	       "\n"
	       "The password comes from, in this order: --password-command,\n"
	       "--password-file, the IMAPFS_PASSWORD environment variable,\n"
	       "or a prompt on the terminal.\n"
	       "\n"
	       "/etc/fstab examples (one line each), an account of the "
	       "config file\nor a URL:\n"
	       "    work /home/me/mail fuse.imapfs noauto,user,_netdev 0 0\n"
	       "    imaps://me@mail.example.org /home/me/mail fuse.imapfs\n"
	       "        noauto,user,_netdev,password_file=/home/me/.imapfs-pw "
	       "0 0\n"
	       "\n"
	       "See imapfs(1).\n");
}

void fs_options_print_version(void)
{
	printf("imapfs %s\n"
	       "libfuse %s\n"
	       "%s\n"
	       "GLib %u.%u.%u\n",
	       IMAPFS_VERSION, fuse_pkgversion(),
	       OpenSSL_version(OPENSSL_VERSION), glib_major_version,
	       glib_minor_version, glib_micro_version);
}
