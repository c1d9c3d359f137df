/*
 * fd-watch: tells JavaScript when a file descriptor is readable, from the Node event
 * loop (libuv uv_poll_t), so that /dev/fuse is served without a thread of its own.
 * All reading and writing stays in JavaScript; this file only waits.
 *
 *   watch(fd, onReadable) -> handle   onReadable(status): 0 when readable, else a
 *                                      negative libuv error (the watch is then stopped)
 *   unwatch(handle)                    stops and frees the watch; call it exactly once
 */
#include <node_api.h>
#include <uv.h>
#include <stdlib.h>

typedef struct {
  uv_poll_t poll;
  napi_env env;
  napi_ref callback;
  napi_async_context context;
} watch_t;

static napi_value fail(napi_env env, const char *what) {
  napi_throw_error(env, NULL, what);
  return NULL;
}

static void on_closed(uv_handle_t *handle) { free(handle->data); }

static void on_poll(uv_poll_t *poll, int status, int events) {
  (void)events;
  watch_t *w = poll->data;
  napi_env env = w->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  napi_value cb, recv, arg, result;
  /* A failed poll is not retried: stop it before JavaScript hears of it. */
  if (status < 0) uv_poll_stop(&w->poll);
  /* make_callback, not call_function: promises settled in the callback run right after it.
     Its receiver must be an object. */
  if (napi_get_reference_value(env, w->callback, &cb) == napi_ok && napi_get_global(env, &recv) == napi_ok &&
      napi_create_int32(env, status, &arg) == napi_ok &&
      napi_make_callback(env, w->context, recv, cb, 1, &arg, &result) == napi_pending_exception) {
    /* Nobody above us to catch it: report it as uncaught, as Node does for its own callbacks. */
    napi_value err;
    if (napi_get_and_clear_last_exception(env, &err) == napi_ok) napi_fatal_exception(env, err);
  }
  napi_close_handle_scope(env, scope);
}

static napi_value watch(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2], name, handle;
  napi_valuetype type = napi_undefined;
  int32_t fd;
  uv_loop_t *loop;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 2 ||
      napi_get_value_int32(env, argv[0], &fd) != napi_ok || napi_typeof(env, argv[1], &type) != napi_ok ||
      type != napi_function)
    return fail(env, "fd-watch: watch(fd: number, onReadable: function)");
  if (napi_get_uv_event_loop(env, &loop) != napi_ok) return fail(env, "fd-watch: no event loop");
  watch_t *w = calloc(1, sizeof *w);
  if (!w) return fail(env, "fd-watch: out of memory");
  w->env = env;
  w->poll.data = w;
  if (napi_create_string_utf8(env, "fd-watch", NAPI_AUTO_LENGTH, &name) != napi_ok ||
      napi_create_external(env, w, NULL, NULL, &handle) != napi_ok) {
    free(w);
    return fail(env, "fd-watch: cannot create the handle");
  }
  int err = uv_poll_init(loop, &w->poll, fd);
  if (err != 0) {
    free(w);
    napi_throw_error(env, uv_err_name(err), uv_strerror(err));
    return NULL;
  }
  if (napi_create_reference(env, argv[1], 1, &w->callback) != napi_ok ||
      napi_async_init(env, NULL, name, &w->context) != napi_ok) {
    uv_close((uv_handle_t *)&w->poll, on_closed);
    return fail(env, "fd-watch: cannot keep the callback");
  }
  err = uv_poll_start(&w->poll, UV_READABLE, on_poll);
  if (err != 0) {
    napi_delete_reference(env, w->callback);
    napi_async_destroy(env, w->context);
    uv_close((uv_handle_t *)&w->poll, on_closed);
    napi_throw_error(env, uv_err_name(err), uv_strerror(err));
    return NULL;
  }
  return handle;
}

static napi_value unwatch(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  void *data;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1 ||
      napi_get_value_external(env, argv[0], &data) != napi_ok)
    return fail(env, "fd-watch: unwatch(handle)");
  watch_t *w = data;
  uv_poll_stop(&w->poll);
  napi_delete_reference(env, w->callback);
  napi_async_destroy(env, w->context);
  uv_close((uv_handle_t *)&w->poll, on_closed);
  return NULL;
}

NAPI_MODULE_INIT() {
  napi_value fn;
  if (napi_create_function(env, "watch", NAPI_AUTO_LENGTH, watch, NULL, &fn) != napi_ok ||
      napi_set_named_property(env, exports, "watch", fn) != napi_ok ||
      napi_create_function(env, "unwatch", NAPI_AUTO_LENGTH, unwatch, NULL, &fn) != napi_ok ||
      napi_set_named_property(env, exports, "unwatch", fn) != napi_ok)
    return NULL;
  return exports;
}
