/*
 * chunk-decode: a chunk's raw deflate data inflated into the caller's buffer and the result
 * hashed with SHA-256, both in one job on libuv's thread pool. The input is not copied
 * (WebCrypto's digest copies its input and wipes the copy) and no zlib stream object is made
 * per chunk. zlib and OpenSSL are Node's own: the node binary exports their symbols and
 * ships their headers.
 *
 *   inflateHash(deflate, out, hashFrom, cb)   cb(err, produced, hex)
 *       inflates until `out` is full or the deflate stream ends (produced: bytes written);
 *       hex: sha256 of out[hashFrom, produced). err: zlib's message for bad data.
 *   hash(bytes, cb)                           cb(err, hex)
 *
 * The buffers must not be written while a job runs; the job holds references to them.
 */
#include <node_api.h>
#include <openssl/evp.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

typedef struct {
  napi_async_work work;
  napi_ref callback, input_ref, output_ref;
  const unsigned char *input;
  size_t input_len;
  unsigned char *output; /* NULL: hash the input only */
  size_t output_len, hash_from, produced;
  char hex[65];
  const char *error; /* static text, or zlib's msg */
} job_t;

static void to_hex(const unsigned char *md, char *hex) {
  static const char digits[] = "0123456789abcdef";
  for (int i = 0; i < 32; i++) {
    hex[2 * i] = digits[md[i] >> 4];
    hex[2 * i + 1] = digits[md[i] & 15];
  }
  hex[64] = 0;
}

static int sha256(const unsigned char *data, size_t len, char *hex) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int md_len = 0;
  if (!EVP_Digest(data, len, md, &md_len, EVP_sha256(), NULL) || md_len != 32) return 0;
  to_hex(md, hex);
  return 1;
}

static void inflate_into(job_t *j) {
  z_stream zs;
  memset(&zs, 0, sizeof zs);
  if (j->input_len > UINT_MAX || j->output_len > UINT_MAX) {
    j->error = "chunk too large";
    return;
  }
  if (inflateInit2(&zs, -15) != Z_OK) {
    j->error = "zlib: cannot initialise";
    return;
  }
  zs.next_in = (Bytef *)j->input;
  zs.avail_in = (uInt)j->input_len;
  zs.next_out = j->output;
  zs.avail_out = (uInt)j->output_len;
  while (zs.avail_out > 0) {
    int rc = inflate(&zs, Z_NO_FLUSH);
    if (rc == Z_STREAM_END || rc == Z_BUF_ERROR) break; /* the stream or the input ended */
    if (rc != Z_OK) {
      j->error = zs.msg ? zs.msg : "zlib: invalid deflate data";
      break;
    }
  }
  j->produced = j->output_len - zs.avail_out;
  inflateEnd(&zs);
}

static void execute(napi_env env, void *data) {
  (void)env;
  job_t *j = data;
  if (j->output) {
    inflate_into(j);
    if (j->error) return;
    size_t from = j->hash_from < j->produced ? j->hash_from : j->produced;
    if (!sha256(j->output + from, j->produced - from, j->hex)) j->error = "sha256 failed";
  } else if (!sha256(j->input, j->input_len, j->hex)) {
    j->error = "sha256 failed";
  }
}

static void complete(napi_env env, napi_status status, void *data) {
  job_t *j = data;
  napi_value cb, recv, argv[3], result;
  napi_get_undefined(env, &argv[0]);
  napi_get_undefined(env, &argv[1]);
  napi_get_undefined(env, &argv[2]);
  if (status != napi_ok) j->error = "job cancelled";
  if (j->error) {
    napi_value msg;
    napi_create_string_utf8(env, j->error, NAPI_AUTO_LENGTH, &msg);
    napi_create_error(env, NULL, msg, &argv[0]);
  } else if (j->output) {
    napi_create_double(env, (double)j->produced, &argv[1]);
    napi_create_string_latin1(env, j->hex, 64, &argv[2]);
  } else {
    napi_create_string_latin1(env, j->hex, 64, &argv[1]);
  }
  if (napi_get_reference_value(env, j->callback, &cb) == napi_ok && napi_get_global(env, &recv) == napi_ok &&
      napi_call_function(env, recv, cb, j->output ? 3 : 2, argv, &result) == napi_pending_exception) {
    napi_value err;
    if (napi_get_and_clear_last_exception(env, &err) == napi_ok) napi_fatal_exception(env, err);
  }
  napi_delete_reference(env, j->callback);
  napi_delete_reference(env, j->input_ref);
  if (j->output_ref) napi_delete_reference(env, j->output_ref);
  napi_delete_async_work(env, j->work);
  free(j);
}

/* The bytes of a Buffer or byte-sized TypedArray (Uint8Array, Int8Array, Uint8ClampedArray). */
static int bytes_of(napi_env env, napi_value v, void **data, size_t *len) {
  bool is;
  if (napi_is_typedarray(env, v, &is) != napi_ok || !is) return 0;
  napi_typedarray_type type;
  size_t length, offset;
  napi_value ab;
  if (napi_get_typedarray_info(env, v, &type, &length, data, &ab, &offset) != napi_ok) return 0;
  if (type != napi_uint8_array && type != napi_int8_array && type != napi_uint8_clamped_array) return 0;
  *len = length;
  return 1;
}

/* Queues a copy of `spec` on the thread pool, holding the buffers and the callback until it completes. */
static napi_value queue(napi_env env, const job_t *spec, napi_value input, napi_value output, napi_value cb) {
  napi_value name;
  job_t *j = malloc(sizeof *j);
  if (!j) {
    napi_throw_error(env, NULL, "chunk-decode: out of memory");
    return NULL;
  }
  *j = *spec;
  if (napi_create_reference(env, cb, 1, &j->callback) != napi_ok || napi_create_reference(env, input, 1, &j->input_ref) != napi_ok ||
      (output && napi_create_reference(env, output, 1, &j->output_ref) != napi_ok) ||
      napi_create_string_utf8(env, "chunk-decode", NAPI_AUTO_LENGTH, &name) != napi_ok ||
      napi_create_async_work(env, NULL, name, execute, complete, j, &j->work) != napi_ok ||
      napi_queue_async_work(env, j->work) != napi_ok) {
    /* Nothing was queued: the references (if any) go with the job. */
    if (j->callback) napi_delete_reference(env, j->callback);
    if (j->input_ref) napi_delete_reference(env, j->input_ref);
    if (j->output_ref) napi_delete_reference(env, j->output_ref);
    free(j);
    napi_throw_error(env, NULL, "chunk-decode: cannot queue the job");
  }
  return NULL;
}

static int is_function(napi_env env, napi_value v) {
  napi_valuetype t;
  return napi_typeof(env, v, &t) == napi_ok && t == napi_function;
}

static napi_value inflate_hash(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  void *in, *out;
  size_t in_len, out_len;
  double from;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 4 || !bytes_of(env, argv[0], &in, &in_len) ||
      !bytes_of(env, argv[1], &out, &out_len) || napi_get_value_double(env, argv[2], &from) != napi_ok || !(from >= 0) ||
      !is_function(env, argv[3])) {
    napi_throw_type_error(env, NULL, "chunk-decode: inflateHash(deflate: Uint8Array, out: Uint8Array, hashFrom: number, cb)");
    return NULL;
  }
  /* An empty output still needs a non-NULL pointer to mean "inflate". */
  job_t spec = {.input = in, .input_len = in_len, .output = out ? out : (unsigned char *)"", .output_len = out_len, .hash_from = (size_t)from};
  return queue(env, &spec, argv[0], argv[1], argv[3]);
}

static napi_value hash(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  void *in;
  size_t in_len;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 2 || !bytes_of(env, argv[0], &in, &in_len) ||
      !is_function(env, argv[1])) {
    napi_throw_type_error(env, NULL, "chunk-decode: hash(bytes: Uint8Array, cb)");
    return NULL;
  }
  job_t spec = {.input = in ? in : (const unsigned char *)"", .input_len = in_len};
  return queue(env, &spec, argv[0], NULL, argv[1]);
}

NAPI_MODULE_INIT() {
  napi_value fn;
  if (napi_create_function(env, "inflateHash", NAPI_AUTO_LENGTH, inflate_hash, NULL, &fn) != napi_ok ||
      napi_set_named_property(env, exports, "inflateHash", fn) != napi_ok ||
      napi_create_function(env, "hash", NAPI_AUTO_LENGTH, hash, NULL, &fn) != napi_ok ||
      napi_set_named_property(env, exports, "hash", fn) != napi_ok)
    return NULL;
  return exports;
}
