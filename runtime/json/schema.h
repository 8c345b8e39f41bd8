/* schema.h: JSON Schema checks for tool arguments, with messages a model can
 * act on.
 *
 * A schema is compiled once, when the tool is declared: the schema itself is
 * checked (unknown type names, keywords of the wrong JSON type, bad regexes,
 * unresolvable $ref) and every error names the schema location as a JSON
 * pointer ("#/properties/qty/type"). Validation then collects every error in
 * the value (up to LC_SCHEMA_MAX_ERRORS) with a value path and a message that
 * says what is wrong and what is allowed:
 *   $.qty: expected integer, got string "two"
 *   $: missing required property "order_id"
 *   $.colour: property not allowed; allowed: size, color (did you mean "color"?)
 *
 * Supported keywords: type (string or array; "integer" = integral number),
 * properties, required, additionalProperties (bool or schema), enum, const,
 * items (schema, or an array = draft-7 tuple with additionalItems),
 * prefixItems, minItems, maxItems, uniqueItems, minLength/maxLength (Unicode
 * code points), pattern, minimum, maximum, exclusiveMinimum/exclusiveMaximum
 * (numbers; draft-4 booleans also accepted), multipleOf, anyOf, oneOf, allOf,
 * not, boolean schemas, and $ref to local JSON pointers ("#", "#/$defs/x",
 * "#/definitions/x", any "#/..." path). Annotations (description, title,
 * default, examples, $schema, $id, $comment) are ignored; any other keyword
 * (format, patternProperties, ...) is ignored but recorded, see
 * lc_schema_unknown_count.
 *
 * pattern is a POSIX extended regular expression (regcomp REG_EXTENDED),
 * unanchored like JSON Schema's. The Perl classes \d \w \s \D \W \S are
 * translated to bracket expressions because tool schemas use them all the
 * time; other Perl syntax (lookaround, lazy quantifiers, \b) is not available
 * and is a compile error when regcomp rejects it.
 *
 * Limits: schema documents nested deeper than LC_SCHEMA_MAX_DEPTH and
 * validation deeper than LC_SCHEMA_MAX_VDEPTH (which also stops $ref cycles
 * such as {"$ref": "#"}) are errors, never unbounded recursion.
 *
 * Ownership: lc_schema_compile copies what it needs from the cJSON tree (the
 * caller keeps it); lc_schema_free releases everything. A compiled schema is
 * read-only during validation, so threads may share one. The error list is
 * caller-owned storage filled by lc_schema_validate; release its strings
 * with lc_schema_errors_free. */
#ifndef LC_SCHEMA_H
#define LC_SCHEMA_H

#include <cjson/cJSON.h>
#include <stddef.h>

#define LC_SCHEMA_MAX_ERRORS 20
#define LC_SCHEMA_MAX_DEPTH 64   /* schema nesting at compile time */
#define LC_SCHEMA_MAX_VDEPTH 128 /* value nesting + $ref hops when validating */

struct lc_schema;

struct lc_schema_error {
  char *path;    /* "$.items[2].qty" */
  char *message; /* "expected integer, got string \"two\"" */
};

struct lc_schema_errors {
  size_t count; /* entries filled in items[] */
  size_t total; /* errors found; more than count when capped */
  struct lc_schema_error items[LC_SCHEMA_MAX_ERRORS];
};

/* Checks and compiles schema. Returns 0 and *out (free with lc_schema_free),
 * LC_EINVAL with a message naming the schema location in err, or
 * LC_ENOMEM. */
int lc_schema_compile(const cJSON *schema, struct lc_schema **out, char *err,
                      size_t errlen);
void lc_schema_free(struct lc_schema *s);

/* Keywords the compiler did not understand, as JSON pointers
 * ("#/properties/email/format"), in document order. */
size_t lc_schema_unknown_count(const struct lc_schema *s);
const char *lc_schema_unknown_at(const struct lc_schema *s, size_t i);

/* Validates value against s. Always initialises *out first. Returns 0 when
 * value is valid, LC_EINVAL when it is not (out holds the errors), LC_ENOMEM
 * if an error message could not be allocated (out may be partial). Call
 * lc_schema_errors_free afterwards in every case. */
int lc_schema_validate(const struct lc_schema *s, const cJSON *value,
                       struct lc_schema_errors *out);
/* One text for the model: one "path: message" line per error, plus
 * "(N more errors not shown)" when capped. Heap string (lc_free), NULL on
 * allocation failure. */
char *lc_schema_errors_format(const struct lc_schema_errors *e);
void lc_schema_errors_free(struct lc_schema_errors *e);

/* ---- The flat view: checking a value without building it ----
 * Most tool schemas are an object of scalar properties with a type each.
 * For those a binding can check a value where it lives (a Lua table)
 * instead of copying it to cJSON first. The view only ever says "certainly
 * valid": anything it does not cover (a keyword besides type, a nested
 * value, an unknown key where that is not allowed) sends the caller to
 * lc_schema_validate, which words every error. */
#define LC_SCHEMA_T_NULL (1u << 0)
#define LC_SCHEMA_T_BOOL (1u << 1)
#define LC_SCHEMA_T_OBJ (1u << 2)
#define LC_SCHEMA_T_ARR (1u << 3)
#define LC_SCHEMA_T_NUM (1u << 4)
#define LC_SCHEMA_T_STR (1u << 5)
#define LC_SCHEMA_T_INT (1u << 6) /* an integral number */

/* 1 when an object value's members can be checked one by one with
 * lc_schema_flat_key (the root accepts objects and has no keyword that
 * looks at the object as a whole besides required). */
int lc_schema_flat(const struct lc_schema *s);
/* For a member named k (kl bytes, no NUL) of an object checked against a
 * flat s: 1 and *types (LC_SCHEMA_T_* bits, 0 = any) when a scalar there
 * needs nothing but its type checked; 0 when only lc_schema_validate can
 * tell (the member's schema has other keywords, or the key is not
 * allowed). */
int lc_schema_flat_key(const struct lc_schema *s, const char *k, size_t kl,
                       unsigned *types);
/* The root's required property names (i < count), NULL past the end. */
const char *lc_schema_flat_required(const struct lc_schema *s, size_t i);

#endif
