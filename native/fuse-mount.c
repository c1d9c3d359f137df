/*
 * fuse-mount: mount(2) of a FUSE connection, called directly instead of spawning
 * mount(8): one syscall instead of a process start on every layer mount (containerd
 * prepares an image's layers one after another, so each mount is on a cold start's path).
 * The kernel answers at once; INIT then arrives on the connection.
 *
 *   mount(source, target, fstype, flags, data)   throws an Error with code = errno name
 */
#include "throw-errno.h"
#include <errno.h>
#include <stdlib.h>
#include <sys/mount.h>

static char *string_arg(napi_env env, napi_value v) {
  size_t len;
  if (napi_get_value_string_utf8(env, v, NULL, 0, &len) != napi_ok) return NULL;
  char *s = malloc(len + 1);
  if (s && napi_get_value_string_utf8(env, v, s, len + 1, &len) != napi_ok) {
    free(s);
    return NULL;
  }
  return s;
}

static napi_value do_mount(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  uint32_t flags;
  char *source = NULL, *target = NULL, *fstype = NULL, *data = NULL;
  napi_value result = NULL;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 5 ||
      !(source = string_arg(env, argv[0])) || !(target = string_arg(env, argv[1])) ||
      !(fstype = string_arg(env, argv[2])) || napi_get_value_uint32(env, argv[3], &flags) != napi_ok ||
      !(data = string_arg(env, argv[4]))) {
    napi_throw_type_error(env, NULL, "fuse-mount: mount(source, target, fstype, flags, data)");
  } else if (mount(source, target, fstype, flags, data) != 0) {
    throw_errno(env, "mount(2)", errno);
  }
  free(source);
  free(target);
  free(fstype);
  free(data);
  return result;
}

NAPI_MODULE_INIT() {
  napi_value fn;
  if (napi_create_function(env, "mount", NAPI_AUTO_LENGTH, do_mount, NULL, &fn) != napi_ok ||
      napi_set_named_property(env, exports, "mount", fn) != napi_ok)
    return NULL;
  return exports;
}
