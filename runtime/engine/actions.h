/* actions.h: the allowed action set of one agent or workflow step.
 *
 * The model may pick only a declared tool or the implicit `finish`
 * (answer: string). lc_actions_check is the single gate between a model's
 * choice and a tool call: unknown names and arguments that fail the tool's
 * JSON schema come back as a message meant for the model (an Observation),
 * never as a call.
 *
 * Schema validation is the caller's: lc_actions_init takes a validator
 * callback (runtime/json/schema.h provides the real one). Without one, arguments
 * are only checked to be a JSON object.
 *
 * Sharing: an action (struct lc_action) is immutable once made and
 * reference counted, so every run that offers the same tool shares one
 * copy of its name, description, schema and compiled schema (l_react.c
 * keeps one per luact.tool object and one `finish` per Lua state). A set
 * holds one reference per action, `finish` included. The count is a
 * plain int, not atomic: an action never leaves the thread that made it
 * (each worker thread has its own Lua states and runs).
 *
 * Ownership: schemas passed to lc_action_new / lc_actions_add are taken
 * over (deleted on failure too). Lookups return pointers valid until
 * lc_actions_free. Errors: 0 or negative LC_E*; text in a caller buffer
 * or in a->err. */
#ifndef LC_ACTIONS_H
#define LC_ACTIONS_H

#include <cjson/cJSON.h>
#include <stddef.h>

#include "buf.h"
#include "effect.h" /* enum lc_effect */
#include "llm.h"

struct lc_schema;

struct lc_action {
  char *name;
  char *description;
  cJSON *schema;           /* JSON schema of the arguments (an object) */
  enum lc_effect effect;
  const char *string_param; /* the property a plain-text input maps onto:
                               the one required string property (or the
                               only property); NULL if none. Points into
                               schema. */
  /* The schema compiled at its first check (lc_action_compiled), then
   * kept: the one thing filled in after lc_action_new. */
  struct lc_schema *compiled;
  int refs; /* plain int: one thread (see above) */
};

/* Returns 0 when args fit act's schema, else non-zero with a message in
 * err. */
typedef int (*lc_schema_validate_fn)(void *ud, const struct lc_action *act,
                                     const cJSON *args, char *err,
                                     size_t errlen);

struct lc_actions {
  struct lc_action **v; /* declared tools, in declaration order (refs) */
  size_t n, cap;
  struct lc_action *finish; /* implicit; not in v (a ref) */
  lc_schema_validate_fn validate;
  void *validate_ud;
  char err[256]; /* message of the last failed lc_actions_add */
  /* Names match exactly, with no case-insensitive fallback: native tool
   * calls name a tool the provider was given verbatim, so "SEARCH" is a
   * wrong call (and its result would answer a name never offered). */
  int exact;
};

#define LC_ACTION_NAME_MAX 64

/* A new action with one reference. Takes ownership of schema (NULL = no
 * arguments, {"type":"object","properties":{}}); copies name and
 * description (NULL = ""). Nothing is checked here: lc_actions_add_action
 * checks the name and the schema for each set, with the messages of
 * lc_actions_add. Returns 0 or LC_ENOMEM. */
int lc_action_new(const char *name, const char *description, cJSON *schema,
                  enum lc_effect effect, struct lc_action **out);
/* The implicit `finish` (answer: string), new, with one reference. It is
 * the same for every run, whatever the configuration (strict mode works on
 * a copy of the request's schemas). 0 or LC_ENOMEM. */
int lc_action_new_finish(struct lc_action **out);
struct lc_action *lc_action_ref(struct lc_action *x);
void lc_action_unref(struct lc_action *x); /* NULL is fine */
/* x's schema compiled (at the first call, then kept with x). 0, or
 * LC_EINVAL (the schema does not compile; message in err, nothing kept,
 * so the same error comes every time) or LC_ENOMEM. */
int lc_action_compiled(const struct lc_action *x, const struct lc_schema **out,
                       char *err, size_t errlen);
/* Test hooks: actions made since the process started, and alive now. */
long lc_action_made(void);
long lc_action_live(void);

/* Sets up an empty set with `finish`: a new reference to the given one,
 * or (finish NULL) a new one. validate may be NULL. Returns 0 or
 * LC_ENOMEM (nothing to free then). */
int lc_actions_init(struct lc_actions *a, lc_schema_validate_fn validate,
                    void *validate_ud, struct lc_action *finish);
void lc_actions_free(struct lc_actions *a);

/* Declares a shared action: checks it as lc_actions_add does (same rules,
 * same messages) and takes a new reference to x (the caller keeps its
 * own). Returns 0, LC_EINVAL (message in a->err) or LC_ENOMEM. */
int lc_actions_add_action(struct lc_actions *a, struct lc_action *x);

/* Declares a tool. Takes ownership of schema (NULL = no arguments). Names are
 * 1..64 of [A-Za-z0-9_-] (the provider rule for function names), unique,
 * and not "finish". The schema must be an object schema. Returns 0,
 * LC_EINVAL (message in a->err) or LC_ENOMEM. */
int lc_actions_add(struct lc_actions *a, const char *name,
                   const char *description, cJSON *schema,
                   enum lc_effect effect);

/* Exact name first, then (unless a->exact) a unique case-insensitive
 * match (the paper's prompts write "Search[...]" for a tool named search).
 * finish included. Whole names only: no prefix, no empty name. NULL when
 * not found. */
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
 * native tool calling. The array is new; names, descriptions and schemas
 * are borrowed from the actions (LC_LLM_TOOL_BORROWED), so they must stay
 * unchanged while it lives: whoever wants to change a schema (strict mode)
 * puts a copy of its own in and clears LC_LLM_TOOL_BORROWED_SCHEMA. Free
 * with lc_actions_llm_tools_free (or as part of a request). Returns 0 or
 * LC_ENOMEM. */
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


#endif
