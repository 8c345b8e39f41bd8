/* react_parse.h: parse one text-mode ReAct reply into thought + action.
 *
 * Accepted forms (Yao et al. 2022 and the LangChain variant):
 *   Thought: ...                      Thought: ...
 *   Action: name[input]               Action: name
 *                                     Action Input: {json} | text
 *   Action: finish[answer]            Final Answer: answer
 * and a whole-reply JSON object {"thought":..,"action":..,"input":..} (what
 * the constrained-decoding schema of actions.h produces; "action_input" is
 * accepted too). Tolerated: text around the lines, markdown bold, list
 * bullets, code fences around the reply or the input, any letter case,
 * "Action 1:" numbering, CRLF. Everything from an "Observation:" line written
 * after the action is cut off (the model inventing its own result).
 *
 * The parser does not know the allowed actions; the engine checks the name
 * and arguments with lc_actions_check and formats parse errors with
 * lc_react_format_error, which does take the allowed names.
 *
 * Ownership: every pointer in struct lc_react_step is owned by the step;
 * lc_react_step_free releases them (also after a failed parse). */
#ifndef LC_REACT_PARSE_H
#define LC_REACT_PARSE_H

#include <cjson/cJSON.h>
#include <stddef.h>

#include "buf.h"

/* What was wrong with a reply. */
enum lc_react_err {
  LC_REACT_OK = 0,
  LC_REACT_EEMPTY,    /* nothing but whitespace (or empty fences) */
  LC_REACT_ENOACTION, /* labelled lines, but no Action / Final Answer */
  LC_REACT_EMULTI,    /* two different actions in one reply */
  LC_REACT_ENOANSWER, /* finish / Final Answer with nothing after it */
  LC_REACT_EJSON,     /* input starts with '{' but is not valid JSON */
  LC_REACT_EFORMAT    /* unknown format, or an Action line we cannot read */
};

/* Which prompt convention the model is asked to follow (prompt + errors). */
enum lc_react_style {
  LC_REACT_STYLE_BRACKET = 0, /* Action: name[input] */
  LC_REACT_STYLE_LANGCHAIN    /* Action: name / Action Input: input */
};

/* Which form the reply actually used. */
enum lc_react_form {
  LC_REACT_FORM_NONE = 0,
  LC_REACT_FORM_BRACKET,   /* name[input] (or name(input)) */
  LC_REACT_FORM_LANGCHAIN, /* name + Action Input */
  LC_REACT_FORM_FINAL,     /* Final Answer: */
  LC_REACT_FORM_JSON       /* whole reply is a JSON object */
};

struct lc_react_step {
  char *thought;  /* Thought text, or the untagged text before the action */
  char *action;   /* name as written; "finish" for every finish form */
  char *input;    /* raw input (trimmed, fences removed); NULL when the
                     action had none (name-only without Action Input) */
  size_t input_len;
  cJSON *args;    /* the input parsed, when it is a JSON object */
  int is_finish;
  char *answer;   /* finish only: the answer text (never empty) */
  int observation_cut; /* a self-written Observation was dropped */
  enum lc_react_form form;
  enum lc_react_err err;
  char err_detail[256]; /* specifics, e.g. where the JSON broke */
};

/* Parses text[0..len) (need not be NUL-terminated; NUL bytes are read as
 * spaces). *out is overwritten, not freed first. Returns 0; LC_EINVAL with
 * out->err / out->err_detail set when the reply is malformed; LC_ENOMEM.
 * Call lc_react_step_free in every case. Pure: no I/O, no globals. */
int lc_react_parse(const char *text, size_t len, struct lc_react_step *out);
void lc_react_step_free(struct lc_react_step *st);

/* Stable short name of an error kind ("empty", "no_action", ...). */
const char *lc_react_err_name(enum lc_react_err e);

/* Appends to out the Observation text for a failed parse: what was wrong and
 * the exact format to use, in the given style, listing the allowed action
 * names (the caller's set; "finish" is added if absent). The text does not
 * start with "Observation:": the engine adds that. Returns 0 or LC_ENOMEM /
 * LC_ETOOBIG from the buffer. */
int lc_react_format_error(const struct lc_react_step *st,
                          enum lc_react_style style,
                          const char *const *allowed, size_t n_allowed,
                          struct lc_buf *out);

#endif
