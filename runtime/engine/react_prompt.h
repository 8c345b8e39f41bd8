/* react_prompt.h: the text-mode ReAct prompt: system message (instructions,
 * allowed actions, format, few-shot examples), user message (question +
 * scratchpad of earlier Thought/Action/Observation steps, appended the way
 * Yao et al. 2022 do), and the stop sequences.
 *
 * The format description uses placeholders ("Action: <action name>[<input>]")
 * and never a real action name followed by an Observation line, so that a
 * reader counting Action/Observation pairs (the bench mock does) sees only
 * the real steps. The bracket style never contains "Action Input:" (the
 * LangChain marker).
 *
 * Ownership: everything is appended to caller-owned lc_bufs; inputs are
 * borrowed. Errors: 0, LC_EINVAL (missing question/actions), or the buffer's
 * LC_ENOMEM / LC_ETOOBIG. */
#ifndef LC_REACT_PROMPT_H
#define LC_REACT_PROMPT_H

#include <stddef.h>

#include "actions.h"
#include "buf.h"
#include "react_parse.h"

struct lc_react_prompt {
  const char *instructions;         /* task instructions; NULL = none */
  const struct lc_actions *actions; /* required */
  const char *const *examples;      /* few-shot examples, verbatim */
  size_t n_examples;
  enum lc_react_style style;
};

/* Appends the system message. */
int lc_react_prompt_system(const struct lc_react_prompt *p, struct lc_buf *out);

/* Appends the user message: "Question: <question>\n" followed by the
 * scratchpad (may be NULL or empty). */
int lc_react_prompt_user(const char *question, const char *scratchpad,
                         struct lc_buf *out);

/* Appends one finished step to a scratchpad:
 *   Thought: <thought>            (omitted when thought is NULL or empty)
 *   Action: <action>[<input>]     (LangChain: Action: + Action Input: lines)
 *   Observation: <observation>
 * input is the model's raw input text (NULL = none). */
int lc_react_scratchpad_add(struct lc_buf *pad, enum lc_react_style style,
                            const char *thought, const char *action,
                            const char *input, const char *observation);

/* Stop sequences for text mode: "\nObservation:" ends a turn at the first
 * invented result; the bare "Observation:" also stops a reply that starts
 * with one (providers cannot anchor at the start). Static storage. */
const char *const *lc_react_stop_sequences(size_t *n);

#endif
