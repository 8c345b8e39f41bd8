/* check_llm_images.c: image parts (llm.h "Content parts"): sniffing,
 * data: URLs, size and scheme checks, each adapter's own form and limits,
 * the journal's record by hash (never the bytes), and the reasoning and
 * caching controls the adapters write (Anthropic thinking blocks passed
 * back, cache_control breakpoints, prompt_cache_key, Ollama think). */
#include <check.h>
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "effect.h"
#include "lc.h"
#include "llm.h"

static const unsigned char png[] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n', 0, 0, 0, 13,
                                    'I',  'H', 'D', 'R', 0,    0,    0,    1,    0, 0, 0, 1};

static void user_with_image(struct lc_llm_request *q, enum lc_llm_provider p,
                            const unsigned char *data, size_t n) {
  memset(q, 0, sizeof *q);
  q->provider = p;
  q->model = lc_strdup("m");
  q->msgs = lc_calloc(1, sizeof *q->msgs);
  q->n_msgs = 1;
  q->msgs[0].role = LC_ROLE_USER;
  q->msgs[0].content = lc_strdup("What is this?");
  q->msgs[0].content_len = 13;
  q->msgs[0].parts = lc_calloc(1, sizeof *q->msgs[0].parts);
  q->msgs[0].n_parts = 1;
  char err[128];
  ck_assert_int_eq(lc_llm_part_image_bytes(&q->msgs[0].parts[0], data, n, NULL, err, sizeof err), 0);
}

static char *build(struct lc_llm_request *q, int want_rc, char *err, size_t errlen) {
  struct lc_llm_http h;
  int rc = lc_llm_adapter_for(q->provider)->build(q, &h, err, errlen);
  ck_assert_msg(rc == want_rc, "build rc %d: %s", rc, err);
  if (rc) return NULL;
  char *b = lc_strndup(h.body, h.body_len);
  lc_llm_http_free(&h);
  return b;
}

START_TEST(sniff_and_checks) {
  char err[128];
  struct lc_llm_part p;
  ck_assert_str_eq(lc_llm_image_sniff(png, sizeof png), "image/png");
  ck_assert_str_eq(lc_llm_image_sniff("\xff\xd8\xff\xe0", 4), "image/jpeg");
  ck_assert_str_eq(lc_llm_image_sniff("GIF89a", 6), "image/gif");
  ck_assert_str_eq(lc_llm_image_sniff("RIFF\0\0\0\0WEBPVP8 ", 16), "image/webp");
  ck_assert_ptr_null(lc_llm_image_sniff("<svg", 4));
  ck_assert_ptr_null(lc_llm_image_sniff("\x89PN", 3));
  /* bytes */
  ck_assert_int_eq(lc_llm_part_image_bytes(&p, png, sizeof png, "image/png", err, sizeof err), 0);
  ck_assert_str_eq(p.media_type, "image/png");
  ck_assert_uint_eq(strlen(p.sha256), 64);
  lc_llm_part_free(&p);
  ck_assert_int_eq(lc_llm_part_image_bytes(&p, png, sizeof png, "image/gif", err, sizeof err), LC_EINVAL);
  lc_llm_part_free(&p);
  ck_assert_int_eq(lc_llm_part_image_bytes(&p, "", 0, NULL, err, sizeof err), LC_EINVAL);
  lc_llm_part_free(&p);
  /* over the cap: refused before anything is copied */
  unsigned char *big = calloc(1, LC_LLM_IMAGE_MAX + 1);
  memcpy(big, png, sizeof png);
  ck_assert_int_eq(lc_llm_part_image_bytes(&p, big, LC_LLM_IMAGE_MAX + 1, NULL, err, sizeof err), LC_EINVAL);
  ck_assert_ptr_nonnull(strstr(err, "20 MB"));
  lc_llm_part_free(&p);
  free(big);
  /* data: URLs, standard and URL-safe base64, padding optional */
  size_t n;
  char *b64 = lc_llm_base64(png, sizeof png, &n);
  char url[256];
  snprintf(url, sizeof url, "data:image/png;base64,%s", b64);
  ck_assert_int_eq(lc_llm_part_image_url(&p, url, err, sizeof err), 0);
  ck_assert_uint_eq(p.data_len, sizeof png);
  ck_assert(memcmp(p.data, png, sizeof png) == 0);
  ck_assert_ptr_null(p.url);
  lc_llm_part_free(&p);
  lc_free(b64);
  static const char *const bad[] = {"data:image/png,rawbytes", "data:image/png;base64,@@@@",
                                    "data:;base64", "http://example.org/a.png",
                                    "ftp://x/a.png", "https://x/a b.png", "file:///etc/passwd"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    ck_assert_msg(lc_llm_part_image_url(&p, bad[i], err, sizeof err) == LC_EINVAL, "%s", bad[i]);
    lc_llm_part_free(&p);
  }
  /* https and loopback http are kept as URLs (never fetched) */
  ck_assert_int_eq(lc_llm_part_image_url(&p, "https://example.org/cat.JPG?x=1", err, sizeof err), 0);
  ck_assert_str_eq(p.media_type, "image/jpeg");
  ck_assert_ptr_null(p.data);
  lc_llm_part_free(&p);
  ck_assert_int_eq(lc_llm_part_image_url(&p, "http://127.0.0.1:8080/a.png", err, sizeof err), 0);
  lc_llm_part_free(&p);
  ck_assert_int_eq(lc_llm_part_image_file(&p, "/nonexistent/x.png", err, sizeof err), LC_EINVAL);
  lc_llm_part_free(&p);
  /* not a regular file: refused before any read (a device never ends) */
  ck_assert_int_eq(lc_llm_part_image_file(&p, "/dev/zero", err, sizeof err), LC_EINVAL);
  ck_assert_msg(strstr(err, "not a regular file") != NULL, "%s", err);
  lc_llm_part_free(&p);
  ck_assert_int_eq(lc_llm_part_image_file(&p, "/tmp", err, sizeof err), LC_EINVAL);
  lc_llm_part_free(&p);
}
END_TEST

START_TEST(each_adapter_its_form) {
  struct lc_llm_request q;
  char err[256];
  char *b;
  user_with_image(&q, LC_PROV_OPENAI, png, sizeof png);
  q.base_url = lc_strdup("http://127.0.0.1:1"); /* Bedrock: no region, no credentials */
  b = build(&q, 0, err, sizeof err);
  ck_assert_msg(strstr(b, "\"content\":[{\"type\":\"text\",\"text\":\"What is this?\"},"
                          "{\"type\":\"image_url\",\"image_url\":{\"url\":\"data:image/png;base64,iVBORw0KGgo"),
                "%s", b);
  lc_free(b);
  q.provider = LC_PROV_ANTHROPIC;
  b = build(&q, 0, err, sizeof err);
  ck_assert_msg(strstr(b, "{\"type\":\"image\",\"source\":{\"type\":\"base64\",\"media_type\":\"image/png\","
                          "\"data\":\"iVBORw0KGgo"),
                "%s", b);
  lc_free(b);
  q.provider = LC_PROV_OLLAMA;
  b = build(&q, 0, err, sizeof err);
  ck_assert_msg(strstr(b, "\"content\":\"What is this?\",\"images\":[\"iVBORw0KGgo"), "%s", b);
  lc_free(b);
  q.provider = LC_PROV_OPENAI_RESPONSES;
  b = build(&q, 0, err, sizeof err);
  ck_assert_msg(strstr(b, "{\"type\":\"input_image\",\"image_url\":\"data:image/png;base64,iVBORw0KGgo"), "%s", b);
  lc_free(b);
  q.provider = LC_PROV_GEMINI;
  b = build(&q, 0, err, sizeof err);
  ck_assert_msg(strstr(b, "{\"inlineData\":{\"mimeType\":\"image/png\",\"data\":\"iVBORw0KGgo"), "%s", b);
  lc_free(b);
  q.provider = LC_PROV_BEDROCK;
  b = build(&q, 0, err, sizeof err);
  ck_assert_msg(strstr(b, "{\"image\":{\"format\":\"png\",\"source\":{\"bytes\":\"iVBORw0KGgo"), "%s", b);
  lc_free(b);
  /* a URL: Ollama, Gemini and Bedrock take none */
  lc_llm_part_free(&q.msgs[0].parts[0]);
  ck_assert_int_eq(lc_llm_part_image_url(&q.msgs[0].parts[0], "https://x.org/a.png", err, sizeof err), 0);
  q.provider = LC_PROV_OLLAMA;
  build(&q, LC_EINVAL, err, sizeof err);
  ck_assert_ptr_nonnull(strstr(err, "Ollama takes image bytes"));
  q.provider = LC_PROV_GEMINI;
  build(&q, LC_EINVAL, err, sizeof err);
  ck_assert_msg(strstr(err, "Gemini takes image bytes") != NULL, "%s", err);
  q.provider = LC_PROV_BEDROCK;
  build(&q, LC_EINVAL, err, sizeof err);
  ck_assert_msg(strstr(err, "Bedrock takes image bytes") != NULL, "%s", err);
  q.provider = LC_PROV_ANTHROPIC;
  b = build(&q, 0, err, sizeof err);
  ck_assert_msg(strstr(b, "{\"type\":\"image\",\"source\":{\"type\":\"url\",\"url\":\"https://x.org/a.png\"}}"), "%s", b);
  lc_free(b);
  lc_llm_request_free(&q);
  /* Anthropic's 5 MB per image */
  size_t n = 5u * 1024u * 1024u + 1;
  unsigned char *big = calloc(1, n);
  memcpy(big, png, sizeof png);
  user_with_image(&q, LC_PROV_ANTHROPIC, big, n);
  q.base_url = lc_strdup("http://127.0.0.1:1");
  build(&q, LC_EINVAL, err, sizeof err);
  ck_assert_ptr_nonnull(strstr(err, "5 MB"));
  q.provider = LC_PROV_BEDROCK; /* 3.75 MB at Bedrock */
  build(&q, LC_EINVAL, err, sizeof err);
  ck_assert_msg(strstr(err, "3.75 MB") != NULL, "%s", err);
  q.provider = LC_PROV_GEMINI; /* within Gemini's inline limit */
  b = build(&q, 0, err, sizeof err);
  lc_free(b);
  q.provider = LC_PROV_OPENAI; /* within OpenAI's */
  b = build(&q, 0, err, sizeof err);
  lc_free(b);
  lc_llm_request_free(&q);
  free(big);
}
END_TEST

/* Per-request limits and media types each provider documents (audit 18):
 * Gemini takes no GIF; Bedrock at most 20 images, Anthropic 100, OpenAI
 * (chat and Responses) 500 and a 50 MB payload. All were sent before. */
static void user_with_images(struct lc_llm_request *q, enum lc_llm_provider p,
                             const unsigned char *data, size_t len, size_t n) {
  user_with_image(q, p, data, len);
  q->base_url = lc_strdup("http://127.0.0.1:1");
  struct lc_llm_part *parts = lc_calloc(n, sizeof *parts);
  ck_assert_ptr_nonnull(parts);
  char err[128];
  for (size_t i = 0; i < n; i++)
    ck_assert_int_eq(lc_llm_part_image_bytes(&parts[i], data, len, NULL, err, sizeof err), 0);
  lc_llm_part_free(&q->msgs[0].parts[0]);
  lc_free(q->msgs[0].parts);
  q->msgs[0].parts = parts;
  q->msgs[0].n_parts = n;
}

START_TEST(request_image_limits) {
  static const unsigned char gif[] = {'G', 'I', 'F', '8', '9', 'a', 1, 0, 1, 0, 0, 0, 0, ';'};
  struct lc_llm_request q;
  char err[256];
  char *b;
  user_with_images(&q, LC_PROV_GEMINI, gif, sizeof gif, 1);
  build(&q, LC_EINVAL, err, sizeof err);
  ck_assert_msg(strstr(err, "not GIF") != NULL, "%s", err);
  q.provider = LC_PROV_BEDROCK; /* Bedrock and the others take GIF */
  lc_free(build(&q, 0, err, sizeof err));
  lc_llm_request_free(&q);
  static const struct {
    enum lc_llm_provider p;
    size_t max;
    const char *who;
  } counts[] = {{LC_PROV_BEDROCK, 20, "Bedrock"}, {LC_PROV_ANTHROPIC, 100, "Anthropic"},
                {LC_PROV_OPENAI, 500, "OpenAI"}, {LC_PROV_OPENAI_RESPONSES, 500, "OpenAI"}};
  for (size_t i = 0; i < sizeof counts / sizeof *counts; i++) {
    user_with_images(&q, counts[i].p, png, sizeof png, counts[i].max);
    b = build(&q, 0, err, sizeof err);
    lc_free(b);
    lc_llm_request_free(&q);
    user_with_images(&q, counts[i].p, png, sizeof png, counts[i].max + 1);
    build(&q, LC_EINVAL, err, sizeof err);
    ck_assert_msg(strstr(err, counts[i].who) && strstr(err, "images per request"), "%s", err);
    lc_llm_request_free(&q);
  }
  /* three 13 MB images: 52 MB of base64 is past OpenAI's 50 MB payload */
  size_t n = 13u << 20;
  unsigned char *big = calloc(1, n);
  memcpy(big, png, sizeof png);
  user_with_images(&q, LC_PROV_OPENAI, big, n, 3);
  build(&q, LC_EINVAL, err, sizeof err);
  ck_assert_msg(strstr(err, "50 MB") != NULL, "%s", err);
  q.provider = LC_PROV_OPENAI_RESPONSES;
  build(&q, LC_EINVAL, err, sizeof err);
  ck_assert_msg(strstr(err, "50 MB") != NULL, "%s", err);
  lc_llm_request_free(&q);
  /* two are within it */
  user_with_images(&q, LC_PROV_OPENAI, big, n, 2);
  lc_free(build(&q, 0, err, sizeof err));
  lc_llm_request_free(&q);
  free(big);
}
END_TEST

/* Pixel limits and animation (audit 18): dimensions read from each
 * format's header; Anthropic and Bedrock refuse past 8000 px (Anthropic
 * past 2000 px when a request has more than 20 images), OpenAI refuses an
 * animated GIF ("non-animated GIF" is its documented type). */
START_TEST(image_pixels_and_animation) {
  unsigned long w, h;
  unsigned char pngh[24];
  memcpy(pngh, png, sizeof pngh);
  pngh[18] = 0x1f, pngh[19] = 0x41; /* width 8001 */
  ck_assert_int_eq(lc_llm_image_dims(pngh, sizeof pngh, &w, &h), 1);
  ck_assert_uint_eq(w, 8001);
  ck_assert_uint_eq(h, 1);
  /* JPEG: an APP0 segment, then SOF0 with height 9000 and width 16 */
  static const unsigned char jpg[] = {0xff, 0xd8, 0xff, 0xe0, 0, 4, 'J', 'F', 0xff, 0xff, 0xc0,
                                      0, 11, 8, 0x23, 0x28, 0, 16, 1, 1, 0x11, 0};
  ck_assert_int_eq(lc_llm_image_dims(jpg, sizeof jpg, &w, &h), 1);
  ck_assert_uint_eq(w, 16);
  ck_assert_uint_eq(h, 9000);
  /* WebP VP8X canvas 3000 x 2 */
  unsigned char webp[30] = {'R', 'I', 'F', 'F', 22, 0, 0, 0, 'W', 'E', 'B', 'P', 'V', 'P', '8', 'X'};
  webp[24] = (3000 - 1) & 0xff, webp[25] = (3000 - 1) >> 8, webp[27] = 1;
  ck_assert_int_eq(lc_llm_image_dims(webp, sizeof webp, &w, &h), 1);
  ck_assert_uint_eq(w, 3000);
  ck_assert_uint_eq(h, 2);
  /* truncated or unknown headers: no dimensions, no refusal */
  ck_assert_int_eq(lc_llm_image_dims(jpg, 12, &w, &h), 0);
  ck_assert_int_eq(lc_llm_image_dims(webp, 16, &w, &h), 0);
  struct lc_llm_request q;
  char err[256];
  user_with_images(&q, LC_PROV_ANTHROPIC, pngh, sizeof pngh, 1);
  build(&q, LC_EINVAL, err, sizeof err);
  ck_assert_msg(strstr(err, "8000x8000") != NULL, "%s", err);
  q.provider = LC_PROV_BEDROCK;
  build(&q, LC_EINVAL, err, sizeof err);
  ck_assert_msg(strstr(err, "8000x8000") != NULL, "%s", err);
  q.provider = LC_PROV_OPENAI; /* OpenAI scales it down */
  lc_free(build(&q, 0, err, sizeof err));
  lc_llm_request_free(&q);
  user_with_images(&q, LC_PROV_ANTHROPIC, jpg, sizeof jpg, 1);
  build(&q, LC_EINVAL, err, sizeof err);
  ck_assert_msg(strstr(err, "8000x8000") != NULL, "%s", err);
  lc_llm_request_free(&q);
  /* 3000 px wide: fine alone, refused among 21 images at Anthropic */
  user_with_images(&q, LC_PROV_ANTHROPIC, webp, sizeof webp, 20);
  lc_free(build(&q, 0, err, sizeof err));
  lc_llm_request_free(&q);
  user_with_images(&q, LC_PROV_ANTHROPIC, webp, sizeof webp, 21);
  build(&q, LC_EINVAL, err, sizeof err);
  ck_assert_msg(strstr(err, "2000x2000") != NULL, "%s", err);
  lc_llm_request_free(&q);
  /* a GIF of two frames (extension, two images, trailer) */
  static const unsigned char gif2[] = {
      'G', 'I', 'F', '8', '9', 'a', 1, 0, 1, 0, 0x80, 0, 0, /* screen, 2-colour table */
      0, 0, 0, 255, 255, 255,
      0x21, 0xf9, 4, 4, 10, 0, 0, 0,               /* graphic control */
      0x2c, 0, 0, 0, 0, 1, 0, 1, 0, 0, 2, 2, 0x44, 1, 0, /* frame 1 */
      0x21, 0xf9, 4, 4, 10, 0, 0, 0,
      0x2c, 0, 0, 0, 0, 1, 0, 1, 0, 0, 2, 2, 0x44, 1, 0, /* frame 2 */
      0x3b};
  ck_assert_int_eq(lc_llm_image_gif_frames(gif2, sizeof gif2), 2);
  ck_assert_int_eq(lc_llm_image_gif_frames(gif2, 40), 1); /* cut: what was there */
  user_with_images(&q, LC_PROV_OPENAI, gif2, sizeof gif2, 1);
  build(&q, LC_EINVAL, err, sizeof err);
  ck_assert_msg(strstr(err, "animated GIF") != NULL, "%s", err);
  q.provider = LC_PROV_OPENAI_RESPONSES;
  build(&q, LC_EINVAL, err, sizeof err);
  q.provider = LC_PROV_ANTHROPIC;
  lc_free(build(&q, 0, err, sizeof err));
  lc_llm_request_free(&q);
}
END_TEST

/* The journal keeps the hash, media type and size, never the bytes: a
 * 1 MB image makes a record of a few hundred bytes, and another image
 * makes another record (replay still tells them apart). */
START_TEST(journaled_by_hash) {
  size_t n = 1u << 20;
  unsigned char *img = calloc(1, n);
  memcpy(img, png, sizeof png);
  struct lc_llm_request q;
  user_with_image(&q, LC_PROV_OPENAI, img, n);
  cJSON *j = lc_effect_llm_request_json(&q);
  char *s = cJSON_PrintUnformatted(j);
  ck_assert_msg(strlen(s) < 600, "%zu bytes: %.300s", strlen(s), s);
  ck_assert_ptr_nonnull(strstr(s, q.msgs[0].parts[0].sha256));
  ck_assert_ptr_nonnull(strstr(s, "\"bytes\":1048576"));
  ck_assert_ptr_null(strstr(s, "iVBOR"));
  img[100] = 1; /* another image, same size */
  lc_llm_part_free(&q.msgs[0].parts[0]);
  char err[64];
  ck_assert_int_eq(lc_llm_part_image_bytes(&q.msgs[0].parts[0], img, n, NULL, err, sizeof err), 0);
  cJSON *j2 = lc_effect_llm_request_json(&q);
  char *s2 = cJSON_PrintUnformatted(j2);
  ck_assert_str_ne(s, s2);
  cJSON_free(s);
  cJSON_free(s2);
  cJSON_Delete(j);
  cJSON_Delete(j2);
  lc_llm_request_free(&q);
  free(img);
}
END_TEST

START_TEST(caching_and_thinking_controls) {
  struct lc_llm_request q;
  char err[256];
  memset(&q, 0, sizeof q);
  q.provider = LC_PROV_ANTHROPIC;
  q.model = lc_strdup("claude");
  q.cache_control = 1;
  q.thinking_budget = 2048;
  q.n_tools = 1;
  q.tools = lc_calloc(1, sizeof *q.tools);
  q.tools[0].name = lc_strdup("t");
  q.tools[0].schema_json = lc_strdup("{\"type\":\"object\"}");
  q.msgs = lc_calloc(4, sizeof *q.msgs);
  q.n_msgs = 4;
  q.msgs[0].role = LC_ROLE_SYSTEM;
  q.msgs[0].content = lc_strdup("sys");
  q.msgs[1].role = LC_ROLE_USER;
  q.msgs[1].content = lc_strdup("hi");
  q.msgs[2].role = LC_ROLE_ASSISTANT;
  q.msgs[2].n_tool_calls = 1;
  q.msgs[2].tool_calls = lc_calloc(1, sizeof *q.msgs[2].tool_calls);
  q.msgs[2].tool_calls[0].id = lc_strdup("toolu_1");
  q.msgs[2].tool_calls[0].name = lc_strdup("t");
  q.msgs[2].tool_calls[0].args_json = lc_strdup("{}");
  q.msgs[2].reasoning_state = lc_strdup("[{\"type\":\"thinking\",\"thinking\":\"hm\",\"signature\":\"SIG\"}]");
  q.msgs[2].reasoning_prov = LC_PROV_ANTHROPIC;
  q.msgs[3].role = LC_ROLE_TOOL;
  q.msgs[3].tool_call_id = lc_strdup("toolu_1");
  q.msgs[3].content = lc_strdup("ok");
  char *b = build(&q, 0, err, sizeof err);
  ck_assert_msg(strstr(b, "\"content\":[{\"type\":\"thinking\",\"thinking\":\"hm\",\"signature\":\"SIG\"},"
                          "{\"type\":\"tool_use\""),
                "%s", b);
  ck_assert_msg(strstr(b, "\"input_schema\":{\"type\":\"object\"},\"cache_control\":{\"type\":\"ephemeral\"}}"), "%s", b);
  ck_assert_msg(strstr(b, "\"system\":[{\"type\":\"text\",\"text\":\"sys\",\"cache_control\":{\"type\":\"ephemeral\"}}]"), "%s", b);
  ck_assert_msg(strstr(b, "\"content\":\"ok\",\"cache_control\":{\"type\":\"ephemeral\"}}"), "%s", b);
  ck_assert_msg(strstr(b, "\"thinking\":{\"type\":\"enabled\",\"budget_tokens\":2048}"), "%s", b);
  lc_free(b);
  /* another provider's state is not sent to Anthropic */
  q.msgs[2].reasoning_prov = LC_PROV_OPENAI_RESPONSES;
  b = build(&q, 0, err, sizeof err);
  ck_assert_msg(!strstr(b, "SIG"), "%s", b);
  lc_free(b);
  /* OpenAI: prompt_cache_key and reasoning_effort */
  q.provider = LC_PROV_OPENAI;
  q.cache_key = lc_strdup("k1");
  q.reasoning_effort = lc_strdup("low");
  b = build(&q, 0, err, sizeof err);
  ck_assert_msg(strstr(b, "\"reasoning_effort\":\"low\",\"prompt_cache_key\":\"k1\""), "%s", b);
  lc_free(b);
  q.provider = LC_PROV_OLLAMA;
  b = build(&q, 0, err, sizeof err);
  ck_assert_msg(strstr(b, "\"think\":true"), "%s", b);
  lc_free(b);
  lc_llm_request_free(&q);
}
END_TEST

/* Anthropic's non-streamed thinking blocks come back as reasoning_state. */
START_TEST(anthropic_thinking_kept) {
  const char *body =
      "{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"c\",\"content\":["
      "{\"type\":\"thinking\",\"thinking\":\"Let me see.\",\"signature\":\"EqQB\"},"
      "{\"type\":\"redacted_thinking\",\"data\":\"opaque\"},"
      "{\"type\":\"tool_use\",\"id\":\"toolu_1\",\"name\":\"t\",\"input\":{}}],"
      "\"stop_reason\":\"tool_use\",\"usage\":{\"input_tokens\":3,\"output_tokens\":4}}";
  struct lc_llm_response r;
  lc_llm_response_init(&r);
  ck_assert_int_eq(lc_llm_anthropic.parse(body, strlen(body), &r), 0);
  ck_assert_str_eq(r.reasoning, "Let me see.");
  ck_assert_str_eq(r.reasoning_state,
                   "[{\"type\":\"thinking\",\"thinking\":\"Let me see.\",\"signature\":\"EqQB\"},"
                   "{\"type\":\"redacted_thinking\",\"data\":\"opaque\"}]");
  lc_llm_response_free(&r);
}
END_TEST

/* Streamed: the thinking block is assembled from thinking_delta and
 * signature_delta, at any split. */
START_TEST(anthropic_thinking_stream_kept) {
  const char *body =
      "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\","
      "\"model\":\"c\",\"usage\":{\"input_tokens\":3,\"output_tokens\":1}}}\n\n"
      "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,"
      "\"content_block\":{\"type\":\"thinking\",\"thinking\":\"\",\"signature\":\"\"}}\n\n"
      "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,"
      "\"delta\":{\"type\":\"thinking_delta\",\"thinking\":\"Let me \"}}\n\n"
      "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,"
      "\"delta\":{\"type\":\"thinking_delta\",\"thinking\":\"see.\"}}\n\n"
      "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,"
      "\"delta\":{\"type\":\"signature_delta\",\"signature\":\"EqQB\"}}\n\n"
      "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n"
      "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":1,"
      "\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_1\",\"name\":\"t\",\"input\":{}}}\n\n"
      "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":1}\n\n"
      "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\"},"
      "\"usage\":{\"output_tokens\":9}}\n\n"
      "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";
  size_t len = strlen(body);
  for (size_t cut = 0; cut <= len; cut += 7) {
    struct lc_llm_stream *st = lc_llm_anthropic.stream_new();
    ck_assert_int_eq(lc_llm_anthropic.stream_feed(st, body, cut, NULL, NULL), 0);
    ck_assert_int_eq(lc_llm_anthropic.stream_feed(st, body + cut, len - cut, NULL, NULL), 0);
    struct lc_llm_response r;
    lc_llm_response_init(&r);
    ck_assert_int_eq(lc_llm_anthropic.stream_end(st, &r), 0);
    lc_llm_anthropic.stream_free(st);
    ck_assert_str_eq(r.reasoning, "Let me see.");
    ck_assert_str_eq(r.reasoning_state,
                     "[{\"type\":\"thinking\",\"thinking\":\"Let me see.\",\"signature\":\"EqQB\"}]");
    ck_assert_uint_eq(r.n_tool_calls, 1);
    lc_llm_response_free(&r);
  }
}
END_TEST

/* A data: URL over the cap is refused by its length: nothing decoded. */
START_TEST(huge_data_url_refused_before_decoding) {
  size_t n = (size_t)LC_LLM_IMAGE_MAX / 3 * 4 + 64;
  char *url = malloc(n + 32);
  strcpy(url, "data:image/png;base64,");
  size_t h = strlen(url);
  memset(url + h, 'A', n);
  url[h + n] = '\0';
  struct lc_llm_part p;
  char err[128];
  long live = lc_alloc_live();
  lc_alloc_fail_after(1); /* the first allocation would fail: none is made */
  int rc = lc_llm_part_image_data_url(&p, url, h + n, err, sizeof err);
  lc_alloc_fail_after(0);
  ck_assert_int_eq(rc, LC_EINVAL);
  ck_assert_msg(strstr(err, "20 MB") != NULL, "%s", err);
  ck_assert_int_eq(lc_alloc_live(), live);
  free(url);
}
END_TEST

/* A stream announcing countless output items is cut off, not searched
 * quadratically. */
/* A stored Responses answer (store: true, which the request asked for):
 * its reasoning items are replayable by id and go back before the calls
 * that carry their item ids (audit 18: they were dropped, since only
 * items with encrypted_content were kept, while the calls still went back
 * with their ids: "function_call was provided without its required
 * reasoning item"). Unstored, an item without encrypted_content is still
 * dropped (nothing on the server to refer to). */
START_TEST(responses_stored_reasoning_replayed) {
  const char *body = "{\"id\":\"resp_1\",\"status\":\"completed\",\"store\":%s,\"output\":["
                     "{\"type\":\"reasoning\",\"id\":\"rs_1\",\"summary\":[]},"
                     "{\"type\":\"function_call\",\"id\":\"fc_1\",\"call_id\":\"call_1\",\"name\":\"f\","
                     "\"arguments\":\"{}\",\"status\":\"completed\"}]}";
  char b[512];
  struct lc_llm_response r;
  snprintf(b, sizeof b, body, "false");
  lc_llm_response_init(&r);
  ck_assert_int_eq(lc_llm_openai_responses.parse(b, strlen(b), &r), 0);
  ck_assert_ptr_null(r.reasoning_state);
  lc_llm_response_free(&r);
  snprintf(b, sizeof b, body, "true");
  lc_llm_response_init(&r);
  ck_assert_int_eq(lc_llm_openai_responses.parse(b, strlen(b), &r), 0);
  ck_assert_str_eq(r.reasoning_state, "[{\"type\":\"reasoning\",\"id\":\"rs_1\",\"summary\":[]}]");
  ck_assert_str_eq(r.tool_calls[0].signature, "fc_1");
  /* the next turn, stored too: reasoning item, then the call by id */
  struct lc_llm_request q;
  memset(&q, 0, sizeof q);
  q.provider = LC_PROV_OPENAI_RESPONSES;
  q.model = lc_strdup("m");
  q.store = 1;
  q.msgs = lc_calloc(3, sizeof *q.msgs);
  q.n_msgs = 3;
  q.msgs[0].role = LC_ROLE_USER;
  q.msgs[0].content = lc_strdup("go");
  q.msgs[0].content_len = 2;
  q.msgs[1].role = LC_ROLE_ASSISTANT;
  q.msgs[1].tool_calls = r.tool_calls;
  q.msgs[1].n_tool_calls = r.n_tool_calls;
  r.tool_calls = NULL;
  r.n_tool_calls = 0;
  q.msgs[1].reasoning_state = r.reasoning_state;
  q.msgs[1].reasoning_prov = LC_PROV_OPENAI_RESPONSES;
  r.reasoning_state = NULL;
  q.msgs[2].role = LC_ROLE_TOOL;
  q.msgs[2].tool_call_id = lc_strdup("call_1");
  q.msgs[2].content = lc_strdup("ok");
  q.msgs[2].content_len = 2;
  char err[128];
  char *out = build(&q, 0, err, sizeof err);
  ck_assert_msg(strstr(out, "{\"type\":\"reasoning\",\"id\":\"rs_1\",\"summary\":[]},{\"type\":"
                            "\"function_call\",\"call_id\":\"call_1\",\"name\":\"f\",\"arguments\":"
                            "\"{}\",\"id\":\"fc_1\"}") != NULL,
                "%s", out);
  lc_free(out);
  lc_llm_request_free(&q);
  lc_llm_response_free(&r);
}
END_TEST

/* Ollama's "thinking" (think: true) lands in r.reasoning, whole and
 * streamed, never in the text (audit 18: no test read it). */
START_TEST(ollama_thinking_is_reasoning) {
  const char *body = "{\"model\":\"qwen3\",\"message\":{\"role\":\"assistant\",\"thinking\":\"Two and two.\","
                     "\"content\":\"4\"},\"done\":true,\"done_reason\":\"stop\"}";
  struct lc_llm_response r;
  lc_llm_response_init(&r);
  ck_assert_int_eq(lc_llm_ollama.parse(body, strlen(body), &r), 0);
  ck_assert_str_eq(r.reasoning, "Two and two.");
  ck_assert_str_eq(r.text, "4");
  lc_llm_response_free(&r);
  const char *nd = "{\"message\":{\"role\":\"assistant\",\"thinking\":\"Two \",\"content\":\"\"},\"done\":false}\n"
                   "{\"message\":{\"role\":\"assistant\",\"thinking\":\"and two.\",\"content\":\"\"},\"done\":false}\n"
                   "{\"message\":{\"role\":\"assistant\",\"content\":\"4\"},\"done\":false}\n"
                   "{\"message\":{\"role\":\"assistant\",\"content\":\"\"},\"done\":true,\"done_reason\":\"stop\"}\n";
  struct lc_llm_stream *st = lc_llm_ollama.stream_new();
  for (size_t i = 0; nd[i]; i++)
    ck_assert_int_eq(lc_llm_ollama.stream_feed(st, nd + i, 1, NULL, NULL), 0);
  lc_llm_response_init(&r);
  ck_assert_int_eq(lc_llm_ollama.stream_end(st, &r), 0);
  lc_llm_ollama.stream_free(st);
  ck_assert_str_eq(r.reasoning, "Two and two.");
  ck_assert_str_eq(r.text, "4");
  lc_llm_response_free(&r);
}
END_TEST

START_TEST(responses_item_cap) {
  struct lc_buf b;
  lc_buf_init(&b, 0);
  for (int i = 0; i < 5000; i++)
    lc_buf_printf(&b, "data: {\"type\":\"response.output_item.added\",\"output_index\":%d,"
                      "\"item\":{\"type\":\"message\",\"id\":\"m%d\"}}\n\n", i, i);
  struct lc_llm_stream *st = lc_llm_openai_responses.stream_new();
  int frc = lc_llm_openai_responses.stream_feed(st, b.data, b.len, NULL, NULL);
  struct lc_llm_response r;
  lc_llm_response_init(&r);
  ck_assert_int_eq(frc, LC_EINVAL);
  ck_assert_int_eq(lc_llm_openai_responses.stream_end(st, &r), LC_EINVAL);
  ck_assert_int_eq(r.err, LC_LLM_EBADRESP);
  ck_assert_msg(strstr(r.err_message, "more than 4096 output items") != NULL, "%s", r.err_message);
  lc_llm_openai_responses.stream_free(st);
  lc_llm_response_free(&r);
  lc_buf_free(&b);
}
END_TEST

START_TEST(anthropic_thinking_block_cap) {
  struct lc_buf b;
  lc_buf_init(&b, 0);
  lc_buf_puts(&b, "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\"}}\n\n");
  for (int i = 0; i < 1100; i++)
    lc_buf_printf(&b, "data: {\"type\":\"content_block_start\",\"index\":%d,"
                      "\"content_block\":{\"type\":\"thinking\",\"thinking\":\"\"}}\n\n", i);
  struct lc_llm_stream *st = lc_llm_anthropic.stream_new();
  ck_assert_int_eq(lc_llm_anthropic.stream_feed(st, b.data, b.len, NULL, NULL), LC_EINVAL);
  struct lc_llm_response r;
  lc_llm_response_init(&r);
  ck_assert_int_eq(lc_llm_anthropic.stream_end(st, &r), LC_EINVAL);
  ck_assert_msg(strstr(r.err_message, "more than 1024 thinking blocks") != NULL, "%s", r.err_message);
  lc_llm_anthropic.stream_free(st);
  lc_llm_response_free(&r);
  lc_buf_free(&b);
}
END_TEST

Suite *llm_images_suite(void) {
  Suite *s = suite_create("llm_images");
  TCase *tc = tcase_create("images");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, sniff_and_checks);
  tcase_add_test(tc, each_adapter_its_form);
  tcase_add_test(tc, request_image_limits);
  tcase_add_test(tc, image_pixels_and_animation);
  tcase_add_test(tc, journaled_by_hash);
  tcase_add_test(tc, caching_and_thinking_controls);
  tcase_add_test(tc, anthropic_thinking_kept);
  tcase_add_test(tc, anthropic_thinking_stream_kept);
  tcase_add_test(tc, huge_data_url_refused_before_decoding);
  tcase_add_test(tc, responses_item_cap);
  tcase_add_test(tc, ollama_thinking_is_reasoning);
  tcase_add_test(tc, responses_stored_reasoning_replayed);
  tcase_add_test(tc, anthropic_thinking_block_cap);
  suite_add_tcase(s, tc);
  return s;
}
