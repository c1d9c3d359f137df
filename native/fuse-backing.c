/*
 * fuse-backing: registers and releases FUSE passthrough backing files (Linux >= 6.9),
 * the two ioctls on /dev/fuse that Node cannot make. A file opened with a backing id is
 * read by the kernel straight from the backing file, without a READ to this process.
 *
 *   open(fuseFd, fileFd) -> backing id (> 0)   FUSE_DEV_IOC_BACKING_OPEN
 *   close(fuseFd, id)                           FUSE_DEV_IOC_BACKING_CLOSE
 *
 * Failures throw an Error whose code is the errno name (EPERM, ELOOP, ...).
 */
#include "throw-errno.h"
#include <errno.h>
#include <stdint.h>
#include <sys/ioctl.h>

/* From <linux/fuse.h> (protocol 7.40); spelled out so that older headers build too. */
struct backing_map {
  int32_t fd;
  uint32_t flags;
  uint64_t padding;
};
#define IOC_MAGIC 229
#define IOC_BACKING_OPEN _IOW(IOC_MAGIC, 1, struct backing_map)
#define IOC_BACKING_CLOSE _IOW(IOC_MAGIC, 2, uint32_t)

static int two_ints(napi_env env, napi_callback_info info, int32_t *a, int32_t *b) {
  size_t argc = 2;
  napi_value argv[2];
  return napi_get_cb_info(env, info, &argc, argv, NULL, NULL) == napi_ok && argc == 2 &&
         napi_get_value_int32(env, argv[0], a) == napi_ok && napi_get_value_int32(env, argv[1], b) == napi_ok;
}

static napi_value backing_open(napi_env env, napi_callback_info info) {
  int32_t fuse_fd, file_fd;
  if (!two_ints(env, info, &fuse_fd, &file_fd)) {
    napi_throw_type_error(env, NULL, "fuse-backing: open(fuseFd, fileFd)");
    return NULL;
  }
  struct backing_map map = {.fd = file_fd, .flags = 0, .padding = 0};
  int id = ioctl(fuse_fd, IOC_BACKING_OPEN, &map);
  if (id < 0) return throw_errno(env, "FUSE_DEV_IOC_BACKING_OPEN", errno);
  napi_value out;
  napi_create_int32(env, id, &out);
  return out;
}

static napi_value backing_close(napi_env env, napi_callback_info info) {
  int32_t fuse_fd, id;
  if (!two_ints(env, info, &fuse_fd, &id)) {
    napi_throw_type_error(env, NULL, "fuse-backing: close(fuseFd, id)");
    return NULL;
  }
  uint32_t backing_id = (uint32_t)id;
  if (ioctl(fuse_fd, IOC_BACKING_CLOSE, &backing_id) < 0) return throw_errno(env, "FUSE_DEV_IOC_BACKING_CLOSE", errno);
  return NULL;
}

NAPI_MODULE_INIT() {
  napi_value fn;
  if (napi_create_function(env, "open", NAPI_AUTO_LENGTH, backing_open, NULL, &fn) != napi_ok ||
      napi_set_named_property(env, exports, "open", fn) != napi_ok ||
      napi_create_function(env, "close", NAPI_AUTO_LENGTH, backing_close, NULL, &fn) != napi_ok ||
      napi_set_named_property(env, exports, "close", fn) != napi_ok)
    return NULL;
  return exports;
}
