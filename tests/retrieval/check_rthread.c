/* check_rthread.c: a collection's slow work runs on its own thread
 * (rwork.h), never on the loop, in the order it was asked for.
 *
 * The holds: rstore.c calls lc_rstore_hold at "commit", "save" and
 * "rebuild", l_retrieval.c at "search". Armed at one point, the hook below
 * records every call made on the loop thread (the case fails) and keeps
 * the first call made elsewhere waiting until released, so a ticker task
 * (util_stall.h) can prove the loop runs meanwhile, or a script can kill
 * the waiting task at a known moment. */
#include <check.h>
#include <errno.h>
#include <lauxlib.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "chunk.h"
#include "l_luact.h"
#include "l_state.h"
#include "lc.h"
#include "rstore.h"
#include "sched.h"
#include "util_common.h"
#include "util_lua.h"
#include "util_mock.h"
#include "util_stall.h"

/* ---- the hold ---- */

static char hold_at[16];
static atomic_int armed, held, held_once, loop_hits;
static int gate[2] = {-1, -1};
static pthread_t loop_thread;
static struct lc_stall *cur_stall;

static atomic_int split_ended;

static void hold(const char *point) {
  if (!strcmp(point, "split ended")) atomic_store(&split_ended, 1);
  if (!atomic_load(&armed) || strcmp(point, hold_at))
    return;
  if (pthread_equal(pthread_self(), loop_thread)) {
    atomic_fetch_add(&loop_hits, 1);
    if (cur_stall)
      lc_stall_blocked_loop(cur_stall);
    return;
  }
  if (atomic_exchange(&held_once, 1))
    return;
  atomic_store(&held, 1);
  if (cur_stall)
    lc_stall_in_flight(cur_stall);
  char c;
  while (read(gate[0], &c, 1) < 0 && errno == EINTR) {
  }
}

static void hold_release(void) {
  while (write(gate[1], "x", 1) < 0 && errno == EINTR) {
  }
}

static int l_arm(lua_State *L) {
  snprintf(hold_at, sizeof hold_at, "%s", luaL_checkstring(L, 1));
  atomic_store(&held_once, 0);
  atomic_store(&held, 0);
  atomic_store(&armed, 1);
  return 0;
}

static int l_held(lua_State *L) {
  lua_pushboolean(L, atomic_load(&held));
  return 1;
}

static int l_release(lua_State *L) {
  (void)L;
  hold_release();
  return 0;
}

static int l_oom(lua_State *L) {
  lc_alloc_fail_after((long)luaL_checkinteger(L, 1));
  return 0;
}

static int l_split_ended(lua_State *L) {
  lua_pushboolean(L, atomic_load(&split_ended));
  return 1;
}

static int l_loop_hits(lua_State *L) {
  lua_pushinteger(L, atomic_load(&loop_hits));
  return 1;
}

static char dbpath[128];
static struct lc_mock mock;
static int mock_on;

static const char mock_script[] =
    "[{\"match\":{\"path\":\"/v1/"
    "embeddings\"},\"reply\":{\"embeddings\":{\"dims\":16}}}]";

/* Globals every case uses: the hold's controls, DB, BASE and helpers. */
static void setup_state(lua_State *L) {
  static const luaL_Reg fns[] = {
      {"arm", l_arm},         {"held", l_held},
      {"release", l_release}, {"loop_hits", l_loop_hits},
      {"oom", l_oom},
                                 {"split_ended", l_split_ended},         {NULL, NULL}};
  lua_newtable(L);
  luaL_setfuncs(L, fns, 0);
  lua_setglobal(L, "hold");
  lua_pushstring(L, dbpath);
  lua_setglobal(L, "DB");
  if (mock_on) {
    lua_pushstring(L, mock.base_url);
    lua_setglobal(L, "BASE");
  }
  static const char helpers[] =
      "function vec(a) local v = {} for i = 1, 16 do v[i] = math.sin(a * 7 + "
      "i) end return v end\n"
      "function store() return assert(luact.retrieval.store(DB, {model = 'm', "
      "dimensions = 16})) end\n"
      /* n chunks of one document, through the low-level calls */
      "function fill(st, n, source)\n"
      "  assert(st:begin())\n"
      "  local id = assert(st:add_doc(source or 'base', source or 'base', "
      "'{}'))\n"
      "  for c = 1, n do assert(st:add_chunk(id, c, 0, 0, 'c' .. c, nil, "
      "vec(c))) end\n"
      "  assert(st:commit())\n"
      "end\n"
      /* a document of n chunks for st:add, vectors from base on */
      "function batch(n, base)\n"
      "  local chunks, vecs = {}, {}\n"
      "  for c = 1, n do chunks[c] = {text = 'b' .. c, start = 1, char_start = "
      "1}; vecs[c] = vec(base + c) end\n"
      "  return chunks, vecs\n"
      "end\n"
      "function spin(f) while not f() do luact.sleep(0.001) end end\n";
  ck_assert_int_eq(luaL_dostring(L, helpers), LUA_OK);
}

static void unlink_db(void) {
  const char *sfx[] = {"", ".hnsw", ".hnsw.tmp", "-wal", "-shm"};
  char p[192];
  for (size_t i = 0; i < sizeof sfx / sizeof *sfx; i++) {
    snprintf(p, sizeof p, "%s%s", dbpath, sfx[i]);
    unlink(p);
  }
}

static void setup(void) {
  snprintf(dbpath, sizeof dbpath, "/tmp/lc_rthread_%ld.db", (long)getpid());
  unlink_db();
  ck_assert_int_eq(pipe(gate), 0);
  atomic_store(&armed, 0);
  atomic_store(&held, 0);
  atomic_store(&held_once, 0);
  atomic_store(&loop_hits, 0);
  atomic_store(&split_ended, 0);
  loop_thread = pthread_self();
  cur_stall = NULL;
  mock_on = 0;
  lc_rstore_hold = hold;
  lc_chunk_hold = hold;
}

static void teardown(void) {
  lc_rstore_hold = NULL;
  lc_chunk_hold = NULL;
  atomic_store(&armed, 0);
  close(gate[0]);
  close(gate[1]);
  if (mock_on)
    lc_mock_stop(&mock);
  mock_on = 0;
  unlink_db();
}

/* Runs code as a task in a fresh state; it must return "ok". */
static void run_ok(const char *code) {
  struct lc_test_lua t;
  lc_test_lua_open(&t);
  setup_state(t.L);
  char out[256], err[4096];
  int rc = lc_test_lua_run(&t, code, out, sizeof out, err, sizeof err);
  ck_assert_msg(rc == 0, "%s", err);
  ck_assert_str_eq(out, "ok");
  lc_test_lua_close(&t);
}

/* ---- tickers: the loop runs while the work is held ---- */

static void stall_setup(struct lc_stall *s, lua_State *L) {
  (void)s;
  setup_state(L);
}

static void stall_release(struct lc_stall *s) {
  (void)s;
  hold_release();
}

static void run_stall(const char *name, const char *script, const char *want) {
  struct lc_stall s = {.name = name,
                       .script = script,
                       .setup = stall_setup,
                       .release = stall_release};
  cur_stall = &s;
  char err[4096];
  int rc = lc_stall_run(&s, err, sizeof err);
  cur_stall = NULL;
  ck_assert_msg(rc == 0, "%s: %s", name, err);
  lc_stall_assert_ok(&s);
  ck_assert_msg(!strncmp(s.result, want, strlen(want)), "%s: %s", name,
                s.result);
}

/* An add of a large batch through index:add: its commit and HNSW inserts
 * (and the embedding cache's writes) ran on the loop thread, holding every
 * task for the sync and ef_construction-wide searches per vector. */
START_TEST(ticker_beside_add) {
  ck_assert_int_eq(lc_mock_start(&mock, mock_script), 0);
  mock_on = 1;
  run_stall("add",
            "local ix = assert(luact.retrieval.open{path = DB, model = "
            "'openai:emb',\n"
            "  base_url = BASE .. '/v1', api_key = 'k', chunk_size = 40, "
            "chunk_overlap = 0})\n"
            "local words = {} for i = 1, 2400 do words[i] = 'w' .. i end\n"
            "local text = table.concat(words, ' ')\n"
            "hold.arm('commit')\n"
            "function op()\n"
            "  local n = assert(ix:add{source = 'big', text = text})\n"
            "  assert(n > 300, n)\n"
            "  assert(ix:count() == n, ix:count())\n"
            "  return 'ok'\n"
            "end\n",
            "true ok");
}
END_TEST

/* save: the index written and fsynced on the loop thread. */
START_TEST(ticker_beside_save) {
  run_stall("save",
            "local st = store()\n"
            "fill(st, 300)\n"
            "hold.arm('save')\n"
            "function op() assert(st:save()) return 'ok' end\n"
            "function after_release()\n"
            "  local again = store()\n" /* the saved file matches the rows */
            "  assert(again:count() == 300) again:close() st:close()\n"
            "end\n",
            "true ok");
}
END_TEST

/* A stale index rebuilt for count (and before, for a search outside a
 * task, and for save): on the loop thread, every stored vector read and
 * inserted again. */
START_TEST(ticker_beside_rebuild) {
  run_stall(
      "rebuild",
      "local st = store()\n"
      "fill(st, 300)\n"
      "fill(st, 5)\n" /* the same source again: replaced, the index is stale */
      "hold.arm('rebuild')\n"
      "function op() assert(st:count() == 5, st:count()) return 'ok' end\n",
      "true ok");
}
END_TEST

/* Opening a collection whose index file is missing or stale rebuilt it
 * from the rows on the loop thread (and read and checked a saved one
 * there). */
START_TEST(ticker_beside_open) {
  run_stall("open",
            "local st = store()\n"
            "fill(st, 300)\n"
            "st:close()\n" /* never saved: the next open rebuilds */
            "hold.arm('rebuild')\n"
            "function op()\n"
            "  local again = store()\n"
            "  assert(again:count() == 300) again:close()\n"
            "  return 'ok'\n"
            "end\n",
            "true ok");
}
END_TEST

/* Closing a collection: the last connection to its WAL database
 * checkpoints the log into the file and syncs it, on the loop thread. */
START_TEST(ticker_beside_close) {
  run_stall("close",
            "local st = store()\n"
            "fill(st, 300)\n"
            "hold.arm('close')\n"
            "function op() st:close() return 'ok' end\n",
            "true ok");
}
END_TEST

/* luact.retrieval.split of a large document (index:add's first step):
 * 63 MB took 1.2 s of the loop thread. Over a megabyte it runs on a
 * thread from a task. */
START_TEST(ticker_beside_split) {
  run_stall(
      "split",
      "local words = {} for i = 1, 300000 do words[i] = 'w' .. (i % 1000) end\n"
      "local doc = table.concat(words, ' ')\n"
      "assert(#doc > (1 << 20))\n"
      "hold.arm('split')\n"
      "function op()\n"
      "  local cs = assert(luact.retrieval.split(doc, {size = 500, overlap = "
      "50}))\n"
      "  assert(#cs > 100, #cs)\n"
      "  for _, i in ipairs{1, 2, #cs} do\n"
      "    local c = cs[i]\n"
      "    assert(doc:sub(c.start, c.start + #c.text - 1) == c.text)\n"
      "  end\n"
      "  return 'ok'\n"
      "end\n",
      "true ok");
}
END_TEST

/* A background search whose task is killed while it runs: the kill joined
 * its thread on the loop (bounded only by the search). Now the search is
 * left to finish and is freed then; the count queued behind it proves it
 * ended (the state's allocation check at close sees nothing left). */
START_TEST(ticker_beside_cancelled_search) {
  run_stall(
      "cancelled search",
      "local st = store()\n"
      "fill(st, 200)\n"
      "hold.arm('search')\n"
      "function op() return st:search(vec(3), {k = 3, background = true}) end\n"
      "function after_in_flight(task) luact.kill(task) end\n"
      "function after_release()\n"
      "  assert(st:count() == 200)\n"
      "  st:close()\n"
      "end\n",
      "nil already waited or killed");
}
END_TEST

/* ---- cancellation ---- */

/* A task killed while its add commits: the add runs to its end on the
 * collection's thread (whole), and the next call sees all of it. */
START_TEST(killed_mid_add_commits_whole) {
  run_ok("local st = store()\n"
         "local chunks, vecs = batch(500, 0)\n"
         "hold.arm('commit')\n"
         "local t = luact.spawn(function() return st:add('doc', 'text', '{}', "
         "chunks, vecs) end)\n"
         "spin(hold.held)\n"
         "luact.kill(t)\n"
         "local ok = luact.wait(t)\n"
         "assert(not ok, 'the add was not killed')\n"
         "hold.release()\n"
         "assert(st:count() == 500, st:count())\n"
         "local h = assert(st:search(vec(250), {k = 1, exact = true}))\n"
         "assert(h[1].text == 'b250', h[1].text)\n"
         "assert(hold.loop_hits() == 0)\n"
         "st:close()\n"
         "return 'ok'");
}
END_TEST

/* A task killed while its add is still queued (behind a held search): the
 * add is dropped, none of it goes in. */
START_TEST(killed_queued_add_adds_nothing) {
  run_ok("local st = store()\n"
         "fill(st, 10)\n"
         "hold.arm('search')\n"
         "local s = luact.spawn(function() return st:search(vec(1), {k = 1, "
         "background = true}) end)\n"
         "spin(hold.held)\n"
         "local chunks, vecs = batch(50, 100)\n"
         "local t = luact.spawn(function() return st:add('doc', 'text', '{}', "
         "chunks, vecs) end)\n"
         "luact.sleep(0)\n" /* t has queued its add */
         "luact.kill(t)\n"
         "hold.release()\n"
         "local ok, hits = luact.wait(s)\n"
         "assert(ok and hits[1].text == 'c1')\n"
         "assert(st:count() == 10, st:count())\n"
         "assert(not st:doc('doc'), 'the dropped add went in')\n"
         "st:close()\n"
         "return 'ok'");
}
END_TEST

/* A task killed while its document is split: the thread is detached, not
 * joined (the kill returns while the split is held), and it frees the
 * copy and the chunks when it ends (the state's allocation check at
 * close, and ASan, see nothing left). */
START_TEST(killed_mid_split_is_detached) {
  run_ok("local words = {} for i = 1, 300000 do words[i] = 'w' .. (i % 1000) end\n"
         "local doc = table.concat(words, ' ')\n"
         "hold.arm('split')\n"
         "local t = luact.spawn(function() return luact.retrieval.split(doc, {size = 500}) end)\n"
         "spin(hold.held)\n"
         "luact.kill(t)\n"
         "assert(not luact.wait(t))\n"
         "hold.release()\n"
         "spin(hold.split_ended)\n"
         "assert(hold.loop_hits() == 0)\n"
         "return 'ok'");
}
END_TEST

/* ---- ordering ---- */

/* Two adds then a search from one task see both adds; searches racing an
 * add from another task see all of it or none of it. */
START_TEST(adds_then_search_in_order) {
  run_ok("local st = store()\n"
         "local c1, v1 = batch(200, 0)\n"
         "local c2, v2 = batch(200, 1000)\n"
         "assert(st:add('one', 'one', '{}', c1, v1) == 200)\n"
         "assert(st:add('two', 'two', '{}', c2, v2) == 200)\n"
         "local h = assert(st:search(vec(1100), {k = 1}))\n"
         "assert(h[1].text == 'b100' and h[1].source == 'two', h[1].source)\n"
         "assert(st:count() == 400)\n"
         "local c3, v3 = batch(300, 5000)\n"
         "local seen = {}\n"
         "local r = luact.parallel{\n"
         "  function() return st:add('three', 'three', '{}', c3, v3) end,\n"
         "  function()\n"
         "    for i = 1, 20 do\n"
         "      local hs = assert(st:search(vec(5001), {k = 1000, exact = "
         "true, background = i % 2 == 0}))\n"
         "      seen[#seen + 1] = #hs\n"
         "      luact.sleep(0)\n"
         "    end\n"
         "  end}\n"
         "assert(r[1] == 300)\n"
         "for _, n in ipairs(seen) do assert(n == 400 or n == 700, n) end\n"
         "assert(st:count() == 700)\n"
         "st:close()\n"
         "return 'ok'");
}
END_TEST

/* ---- errors ---- */

/* Another writer holds the database: the add waits out SQLite's busy
 * timeout on the collection's thread (the loop runs meanwhile: the ticker
 * task counts) and answers nil, msg, "busy"; the collection is unchanged. */
START_TEST(busy_database_is_nil_msg_busy) {
  run_ok("local st = store()\n"
         "fill(st, 10)\n"
         "local other = store()\n"
         "assert(other:begin())\n" /* the write lock */
         "local chunks, vecs = batch(20, 100)\n"
         "local done, ticks = false, 0\n"
         "local ticker = luact.spawn(function() while not done do ticks = "
         "ticks + 1 luact.sleep(0) end end)\n"
         "local n, msg, code = st:add('doc', 'text', '{}', chunks, vecs)\n"
         "done = true\n"
         "luact.wait(ticker)\n"
         "assert(n == nil and code == 'busy', tostring(msg) .. ' ' .. "
         "tostring(code))\n"
         "assert(msg:find('locked'), msg)\n"
         "assert(ticks > 1, 'the loop waited for the busy database')\n"
         "other:rollback() other:close()\n"
         "assert(st:count() == 10 and not st:doc('doc'))\n"
         "assert(st:add('doc', 'text', '{}', chunks, vecs) == 20)\n"
         "st:close()\n"
         "return 'ok'");
}
END_TEST

/* A disk error while saving (the file's temp name points at /dev/full):
 * nil, msg, "io", and the next save works. */
START_TEST(save_disk_error_is_nil_msg_io) {
  run_ok("local st = store()\n"
         "fill(st, 20)\n"
         "assert(os.execute('ln -s /dev/full ' .. DB .. '.hnsw.tmp'))\n"
         "local ok, msg, code = st:save()\n"
         "assert(ok == nil and code == 'io', tostring(msg))\n"
         "assert(msg:find('space'), msg)\n"
         "os.remove(DB .. '.hnsw.tmp')\n"
         "assert(st:save())\n"
         "st:close()\n"
         "return 'ok'");
}
END_TEST

/* close from a task takes its turn: the jobs queued before it run, the
 * ones after it answer nil, msg, "closed". Where close cannot yield (and
 * at __gc) it drops what is queued at once and leaves the running job to
 * finish. */
START_TEST(close_in_order_or_at_once) {
  run_ok(
      "local st = store()\n"
      "fill(st, 20)\n"
      "hold.arm('search')\n"
      "local s = luact.spawn(function() return st:search(vec(1), {k = 1, "
      "background = true}) end)\n"
      "spin(hold.held)\n"
      "local q = luact.spawn(function() return st:save() end)\n"
      "local c = luact.spawn(function() st:close() return 'closed' end)\n"
      "local x = luact.spawn(function() return st:count() end)\n"
      "luact.sleep(0)\n"
      "hold.release()\n"
      "local oks, hits = luact.wait(s)\n"
      "assert(oks and hits[1].text == 'c1')\n"
      "local okq, saved, qm = luact.wait(q)\n"
      "assert(okq and saved == true, tostring(qm))\n"
      "assert(select(2, luact.wait(c)) == 'closed')\n"
      "local okx, n, m, code = luact.wait(x)\n"
      "assert(okx and n == nil and code == 'closed', tostring(m))\n"
      "local st2 = store()\n"
      "assert(st2:count() == 20)\n"
      "hold.arm('search')\n"
      "local s2 = luact.spawn(function() return st2:search(vec(2), {k = 1, "
      "background = true}) end)\n"
      "spin(hold.held)\n"
      "local q2 = luact.spawn(function() return st2:save() end)\n"
      "luact.sleep(0)\n"
      "coroutine.wrap(function() st2:close() end)()\n"
      "local okq2, a2, m2, c2 = luact.wait(q2)\n"
      "assert(okq2 and a2 == nil and c2 == 'closed', tostring(m2))\n"
      "hold.release()\n"
      "local oks2, hits2 = luact.wait(s2)\n" /* the running search finishes */
      "assert(oks2 and hits2[1].text == 'c2')\n"
      "return 'ok'");
}
END_TEST

/* luact serve runs many states' tasks on one loop: there a slow call that
 * cannot yield is refused even when its own state has no other task (the
 * other runs' agents share the loop). */
START_TEST(cannot_yield_on_a_shared_loop_is_refused) {
  struct lc_test_lua t;
  lc_test_lua_open(&t);
  lua_State *L = lc_lua_newstate();
  ck_assert_ptr_nonnull(L);
  lc_lua_setup(L);
  struct lc_sched *s;
  ck_assert_int_eq(lc_sched_new_on(L, lc_sched_loop(t.s), &s), 0);
  setup_state(L);
  static const char code[] =
      "local st = store()\n"
      "local chunks, vecs = batch(5, 0)\n"
      "local ok, e = pcall(coroutine.wrap(function() return st:add('a', 'a', "
      "'{}', chunks, vecs) end))\n"
      "assert(not ok and tostring(e):find('cannot yield'), tostring(e))\n"
      "assert(st:add('a', 'a', '{}', chunks, vecs) == 5)\n"
      "st:close()\n"
      "return 'ok'";
  ck_assert_int_eq(luaL_loadbufferx(L, code, strlen(code), "=shared", "t"),
                   LUA_OK);
  struct lc_task *task;
  ck_assert_int_eq(lc_sched_spawn(s, L, 0, NULL, &task), 0);
  ck_assert_int_eq(lc_sched_run(s, task), 0);
  lua_State *co = lc_task_thread(task);
  ck_assert_msg(lc_task_status(task) == LUA_OK, "%s", lua_tostring(co, -1));
  ck_assert_str_eq(lua_tostring(co, 1), "ok");
  lc_task_release(task);
  lc_sched_free(s);
  lua_close(L);
  lc_test_lua_close(&t);
}
END_TEST

/* Opening an existing collection with each allocation in turn failing:
 * an out-of-memory error or the collection as stored, never a collection
 * that forgot its dimensions (a failed copy of a stored setting was read
 * as "none": the collection then looked empty). */
START_TEST(open_under_oom_keeps_dimensions) {
  run_ok(
      "local st = store()\n"
      "fill(st, 3)\n"
      "st:close()\n"
      "for n = 1, 300 do\n"
      "  hold.oom(n)\n"
      "  local ok, s, m = pcall(luact.retrieval.store, DB)\n"
      "  hold.oom(0)\n"
      "  if ok and s then\n"
      "    assert(s:dims() == 16, 'dimensions forgotten, allocation ' .. n)\n"
      "    assert(s:count() == 3)\n"
      "    s:close()\n"
      "  else\n"
      "    local e = ok and m or s\n"
      "    assert(tostring(e):find('memory'), tostring(e))\n"
      "  end\n"
      "end\n"
      "return 'ok'");
}
END_TEST

/* ---- where the caller cannot yield ---- */

/* In a coroutine of the script's (not a task) a slow call cannot yield:
 * alone on the loop it runs inline; with other tasks running it is
 * refused rather than hold them. A point read is inline either way. */
START_TEST(cannot_yield_inline_or_refused) {
  run_ok("local st = store()\n"
         "local chunks, vecs = batch(10, 0)\n"
         "local co = coroutine.wrap(function() return st:add('a', 'a', '{}', "
         "chunks, vecs) end)\n"
         "assert(co() == 10)\n"
         "local t = luact.spawn(function() luact.sleep(0.05) end)\n"
         "local ok, e = pcall(coroutine.wrap(function() return st:add('b', "
         "'b', '{}', chunks, vecs) end))\n"
         "assert(not ok and tostring(e):find('cannot yield'), tostring(e))\n"
         "assert(coroutine.wrap(function() return st:doc('a') end)())\n"
         "luact.wait(t)\n"
         "assert(st:count() == 10)\n"
         "st:close()\n"
         "return 'ok'");
}
END_TEST

Suite *rthread_suite(void) {
  Suite *s = suite_create("rthread");
  TCase *tc = tcase_create("rthread");
  /* A stall on the old code hangs until this timeout. */
  tcase_set_timeout(tc, 60);
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, ticker_beside_add);
  tcase_add_test(tc, ticker_beside_save);
  tcase_add_test(tc, ticker_beside_rebuild);
  tcase_add_test(tc, ticker_beside_open);
  tcase_add_test(tc, ticker_beside_close);
  tcase_add_test(tc, ticker_beside_split);
  tcase_add_test(tc, ticker_beside_cancelled_search);
  tcase_add_test(tc, killed_mid_add_commits_whole);
  tcase_add_test(tc, killed_queued_add_adds_nothing);
  tcase_add_test(tc, killed_mid_split_is_detached);
  tcase_add_test(tc, adds_then_search_in_order);
  tcase_add_test(tc, busy_database_is_nil_msg_busy);
  tcase_add_test(tc, save_disk_error_is_nil_msg_io);
  tcase_add_test(tc, close_in_order_or_at_once);
  tcase_add_test(tc, cannot_yield_inline_or_refused);
  tcase_add_test(tc, cannot_yield_on_a_shared_loop_is_refused);
  tcase_add_test(tc, open_under_oom_keeps_dimensions);
  suite_add_tcase(s, tc);
  return s;
}
