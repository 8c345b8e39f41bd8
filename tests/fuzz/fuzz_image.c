/* fuzz_image.c: the image header readers (llm.c): dimensions from PNG,
 * GIF, WebP and JPEG headers and a GIF's frame count, over bytes a script
 * or a file hands in. Reads stay within the input (ASan: the input is
 * copied to a buffer of exactly its size), found dimensions are non-zero,
 * and a prefix of an image never has more frames than the whole. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "llm.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  unsigned char *b = malloc(size ? size : 1);
  if (!b) return 0;
  memcpy(b, data, size);
  unsigned long w, h;
  if (lc_llm_image_dims(b, size, &w, &h) && (!w || !h)) abort();
  int frames = lc_llm_image_gif_frames(b, size);
  if (frames < 0) abort();
  if (size > 1 && lc_llm_image_gif_frames(b, size - 1) > frames) abort();
  free(b);
  return 0;
}
