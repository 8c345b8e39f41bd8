/* actions.h: the allowed action set of one agent or workflow step.
 *
 * The model may pick only a declared tool or the implicit `finish`
 * (answer: string). lc_actions_check is the single gate between a model's
 * choice and a tool call: unknown names and arguments that fail the tool's
 * JSON schema come back as a message meant for the model (an Observation),
 * never as a call.
 *
 * Schema validation is the caller's: lc_actions_init takes a validator
 * callback (runtime/schema.h provides the real one). Without one, arguments
 * are only checked to be a JSON object.
 *
 * Ownership: the set owns its names, descriptions and schemas; schemas passed
 * to lc_actions_add are taken over (deleted on failure too). Lookups return
 * pointers valid until the next lc_actions_add or lc_actions_free. Errors:
 * 0 or negative LC_E*; text in a caller buffer or in a->err. */
#ifndef LC_ACTIONS_H
#define LC_ACTIONS_H

#include <cjson/cJSON.h>
#include <stddef.h>

#include "buf.h"
#include "llm.h"

/* What running a tool twice means (DESIGN.md "Effects and the journal"). */
enum lc_effect {
  LC_EFFECT_PURE = 0,     /* safe to run again */
  LC_EFFECT_IDEMPOTENT,   /* run again with the same idempotency key */
  LC_EFFECT_AT_MOST_ONCE  /* never run again; in doubt after a crash */
};

/* Returns 0 when args fit schema, else non-zero with a message in err. */
typedef int (*lc_schema_validate_fn)(void *ud, const cJSON *schema,
                                     const cJSON *args, char *err,
                                     size_t errlen);

struct lc_action {
  char *name;
  char *description;
  cJSON *schema;           /* JSON schema of the arguments (an object) */
  enum lc_effect effect;
  const char *string_param; /* the property a plain-text input maps onto:
                               the one required string property (or the
                               only property); NULL if none. Points into
                               schema. */
};

struct lc_actions {
  struct lc_action *v; /* declared tools, in declaration order */
  size_t n, cap;
  struct lc_action finish; /* implicit; not in v */
  lc_schema_validate_fn validate;
  void *validate_ud;
  char err[256]; /* message of the last failed lc_actions_add */
};

#define LC_ACTION_NAME_MAX 64

/* Sets up an empty set with `finish`. validate may be NULL. Returns 0 or
 * LC_ENOMEM (nothing to free then). */
int lc_actions_init(struct lc_actions *a, lc_schema_validate_fn validate,
                    void *validate_ud);
void lc_actions_free(struct lc_actions *a);

/* Declares a tool. Takes ownership of schema (NULL = no arguments). Names are
 * 1..64 of [A-Za-z0-9_-] (the provider rule for function names), unique,
 * and not "finish". The schema must be an object schema. Returns 0,
 * LC_EINVAL (message in a->err) or LC_ENOMEM. */
int lc_actions_add(struct lc_actions *a, const char *name,
                   const char *description, cJSON *schema,
                   enum lc_effect effect);

/* Exact name first, then a unique case-insensitive match (the paper's
 * prompts write "Search[...]" for a tool named search). finish included.
 * NULL when not found. */
const struct lc_action *lc_actions_find(const struct lc_actions *a,
                                        const char *name);

/* Checks one chosen action. Give the input as args (a parsed JSON object) or
 * as text (plain input, mapped onto the action's string_param; "" for a
 * tool without required parameters means {}); both NULL means no input
 * ({}). On success returns 0 with *out_action and *out_args (a new object
 * the caller deletes). On failure returns LC_ENOTFOUND (unknown action) or
 * LC_EINVAL (bad arguments) with a message for the model in err, which
 * names the allowed actions or the expected input; LC_ENOMEM. */
int lc_actions_check(const struct lc_actions *a, const char *name,
                     const cJSON *args, const char *text,
                     const struct lc_action **out_action, cJSON **out_args,
                     char *err, size_t errlen);

/* Allowed names, declared order, "finish" last. The array is lc_malloc'ed
 * (lc_free it); the strings are borrowed from a. */
int lc_actions_names(const struct lc_actions *a, const char ***out, size_t *n);

/* The declared tools (plus finish when include_finish) as lc_llm_tool for
 * native tool calling. Everything is copied; free with
 * lc_actions_llm_tools_free. Returns 0 or LC_ENOMEM. */
int lc_actions_to_llm_tools(const struct lc_actions *a, int include_finish,
                            struct lc_llm_tool **out, size_t *n);
void lc_actions_llm_tools_free(struct lc_llm_tool *t, size_t n);

/* Schema for constrained decoding (providers' JSON-schema mode):
 * {"type":"object","properties":{"thought":{"type":"string"},
 *  "action":{"type":"string","enum":[names..., "finish"]},
 *  "input":{"anyOf":[each tool's schema..., finish's]}},
 *  "required":["thought","action","input"],"additionalProperties":false}
 * lc_react_parse reads replies of this shape. New tree (caller deletes) or
 * NULL on allocation failure. */
cJSON *lc_actions_decoding_schema(const struct lc_actions *a);

/* Compact rendering of an action's input for prompts and error messages:
 * "<key>" when its only property is string_param, else a JSON-ish
 * signature such as {"city": string, "units"?: "c"|"f", "days"?: integer}.
 * lc_actions_render_params appends "city: the city; days: how many" from
 * the property descriptions (nothing when there are none). 0 or LC_E*. */
int lc_actions_render_input(const struct lc_action *act, struct lc_buf *out);
int lc_actions_render_params(const struct lc_action *act, struct lc_buf *out);

const char *lc_effect_name(enum lc_effect e); /* "pure", "idempotent", ... */

#endif
