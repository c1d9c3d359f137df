/*
 * Shared by the native addons: throws a JavaScript Error for a failed system call, with the
 * errno's name as its code (EPERM, ELOOP, ...) and the call and strerror as its message.
 */
#ifndef THROW_ERRNO_H
#define THROW_ERRNO_H
#define _GNU_SOURCE
#include <node_api.h>
#include <stdio.h>
#include <string.h>

static napi_value throw_errno(napi_env env, const char *what, int err) {
  napi_value code, msg, error;
  const char *name = strerrorname_np(err);
  char text[160];
  snprintf(text, sizeof text, "%s: %s", what, strerror(err));
  if (napi_create_string_utf8(env, name ? name : "EIO", NAPI_AUTO_LENGTH, &code) == napi_ok &&
      napi_create_string_utf8(env, text, NAPI_AUTO_LENGTH, &msg) == napi_ok &&
      napi_create_error(env, code, msg, &error) == napi_ok)
    napi_throw(env, error);
  return NULL;
}

#endif
