/* Output files that never destroy what they replace. Every command that writes a file the user
 * names (quantize, logits, the GGUF writer) goes through here, so one set of rules holds:
 *
 *  - "-" is standard output; so are /dev/stdout, /dev/stderr, /dev/fd/N and /proc/self/fd/N
 *    (the descriptor itself is written: renaming over those names would replace a link or a
 *    /proc entry, and reopening them would lose an append-mode or pipe stdout).
 *  - A new path or an existing regular file (through any chain of symlinks: the final target is
 *    written, never the link) is written to a temporary file in the target's folder (unnamed
 *    where the file system offers O_TMPFILE, so a killed process leaves nothing), flushed,
 *    fsynced and renamed over the target on commit, so the target is either the old file or the
 *    complete new one. A replaced file keeps its permission bits (and owner where allowed); a new
 *    file gets 0666 less the umask, as any created file does.
 *  - A FIFO or character device (a pipe, /dev/null, a terminal, /dev/full) is written in place:
 *    there is nothing to replace, and renaming over it would remove the node.
 *  - Folders, block devices and sockets are refused.
 *  - An output that is one of the inputs (same device and inode: through symlinks, hard links or
 *    another spelling of the path) is refused before anything is opened.
 *
 * Writes go to the stream returned by fr_outfile_stream, strictly in order: a pipe, terminal or
 * standard output cannot seek (the GGUF writer and logits never do). */
#ifndef FR_CORE_OUTFILE_H
#define FR_CORE_OUTFILE_H

#include <stddef.h>
#include <stdio.h>

#include "ferrum.h"

typedef struct fr_outfile fr_outfile;

/* Opens `path` for writing by the rules above. `inputs` (n_inputs paths; absent ones are
 * skipped) are the files the output must not be. Opening a FIFO waits for its reader. */
fr_status fr_outfile_open(const char *path, const char *const *inputs, size_t n_inputs,
                          fr_outfile **out, fr_error *err);

FILE *fr_outfile_stream(const fr_outfile *o);
/* The path as the caller named it, for messages. */
const char *fr_outfile_name(const fr_outfile *o);

/* Flushes and finishes the output (fsync + rename for a replaced file) and frees `o` whether or
 * not it succeeds. On failure a temporary file is removed and the old target is left as it was;
 * an in-place target may hold part of the output. */
fr_status fr_outfile_commit(fr_outfile *o, fr_error *err);

/* Gives up: removes the temporary file (the target is untouched), closes, frees. NULL is fine. */
void fr_outfile_abort(fr_outfile *o);

#endif
