/* chunk.h: splitting documents into chunks for retrieval.
 *
 * The recursive character splitter (the one the field settled on, as in
 * LangChain's RecursiveCharacterTextSplitter): split at the coarsest
 * separator that occurs (paragraph "\n\n", line "\n", word " ", then code
 * point), split pieces still over size again at the next, and merge
 * neighbours back into chunks of at most size code points, consecutive
 * chunks sharing up to overlap code points. Separators stay with the text
 * that follows them, so every chunk is an exact span of the document: its
 * byte start and code-point start are kept. Chunks are trimmed of
 * surrounding white space; empty ones are dropped.
 *
 * Markdown mode first cuts the document at ATX headings ("# ..." to
 * "###### ...", outside ``` / ~~~ fences), gives every chunk the path of
 * headings above it ("Architecture > Tests"), and never lets a chunk
 * cross a heading.
 *
 * Ownership: a chunk list owns its chunks and their heading strings
 * (lc_chunks_free); the document is borrowed during the call only.
 * Errors: LC_EINVAL with a message in err (bad sizes, text that is not
 * UTF-8 or holds NUL bytes, empty text), LC_ETOOBIG (over
 * LC_CHUNK_MAX_DOC), LC_ENOMEM. */
#ifndef LC_CHUNK_H
#define LC_CHUNK_H

#include <stddef.h>

#define LC_CHUNK_MAX_DOC (64u << 20) /* bytes */

struct lc_chunk_opts {
  size_t size;    /* code points per chunk, >= 1 */
  size_t overlap; /* code points shared by neighbours, < size */
  int markdown;
};

struct lc_chunk {
  size_t start, len;       /* bytes into the document */
  size_t start_cp, len_cp; /* code points */
  char *heading;           /* markdown: "A > B", or NULL */
};

struct lc_chunks {
  struct lc_chunk *v;
  size_t n, cap;
};

int lc_chunk_split(const char *doc, size_t len, const struct lc_chunk_opts *o,
                   struct lc_chunks *out, char *err, size_t errlen);
void lc_chunks_free(struct lc_chunks *c);
/* Tests only: when set, lc_chunk_split calls it with "split" first, on
 * whichever thread splits (rstore.h's lc_rstore_hold, for the splitter);
 * l_retrieval.c's split thread with "split ended" as its last act. */
extern void (*lc_chunk_hold)(const char *point);
/* Checks a document before splitting or indexing: 0, or LC_EINVAL /
 * LC_ETOOBIG with the reason in err. */
int lc_chunk_check_doc(const char *doc, size_t len, char *err, size_t errlen);

#endif
