/* r1ts native addon: N-API glue (plain C, node_api.h, NAPI_VERSION 8) over kernels.c.
 *
 * One exported function per Backend kernel (src/tensor/backend.ts). Arguments are typed arrays and
 * numbers; strided operands arrive as one Float64Array "geometry" [ndim, shape..., then per operand:
 * offset, strides...] so a call costs a handful of N-API lookups, not one per dimension.
 *
 * Safety: every range a kernel will touch is computed from the offsets, strides and sizes (with
 * overflow checks) and compared with the typed array's length, and every index array (positions,
 * targets, gather/scatter indices) is validated, before any kernel runs. A bad call throws a
 * RangeError (sizes, ranges, indices) or TypeError (wrong kind of argument); it never reads or
 * writes out of bounds. napi_get_typedarray_info's data pointer already includes the view's byte
 * offset, so views into a larger ArrayBuffer work as expected. */
#include <node_api.h>

#include <math.h>
#include <stdlib.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "cpu.h"
#include "fp8.h"
#include "kernels.h"
#include "qgemm.h"
napi_value r1_napi_gemm_grouped(napi_env env, napi_callback_info info); /* grouped.c */
#include "threads.h"

#include "glue.h"

int fail(call_t *c, int range, const char *fmt, ...) {
  char msg[600];
  int n = snprintf(msg, sizeof msg, "r1native.%s: ", c->fn);
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg + n, sizeof msg - (size_t)n, fmt, ap);
  va_end(ap);
  bool pending = false;
  napi_is_exception_pending(c->env, &pending);
  if (!pending) {
    if (range) napi_throw_range_error(c->env, "ERR_R1_NATIVE_RANGE", msg);
    else napi_throw_type_error(c->env, "ERR_R1_NATIVE_TYPE", msg);
  }
  return 0;
}

static const char *type_name(napi_typedarray_type t) {
  switch (t) {
    case napi_int8_array: return "Int8Array";
    case napi_uint8_array: return "Uint8Array";
    case napi_uint8_clamped_array: return "Uint8ClampedArray";
    case napi_int16_array: return "Int16Array";
    case napi_uint16_array: return "Uint16Array";
    case napi_int32_array: return "Int32Array";
    case napi_uint32_array: return "Uint32Array";
    case napi_float32_array: return "Float32Array";
    case napi_float64_array: return "Float64Array";
    case napi_bigint64_array: return "BigInt64Array";
    case napi_biguint64_array: return "BigUint64Array";
  }
  return "typed array";
}

static int esize_of(napi_typedarray_type t) {
  switch (t) {
    case napi_int8_array: case napi_uint8_array: case napi_uint8_clamped_array: return 1;
    case napi_int16_array: case napi_uint16_array: return 2;
    case napi_int32_array: case napi_uint32_array: case napi_float32_array: return 4;
    default: return 8;
  }
}

int arg_arr(call_t *c, napi_value v, arr_t *a, const char *name) {
  bool is = false;
  if (napi_is_typedarray(c->env, v, &is) != napi_ok || !is) return fail(c, 0, "%s must be a typed array", name);
  size_t len = 0, boff = 0;
  napi_value ab;
  void *data = NULL;
  if (napi_get_typedarray_info(c->env, v, &a->type, &len, &data, &ab, &boff) != napi_ok)
    return fail(c, 0, "%s: cannot read typed array", name);
  a->data = data; /* already adjusted by the view's byte offset (N-API docs) */
  a->len = (long)len;
  if (len > 0 && data == NULL) return fail(c, 0, "%s: detached buffer", name);
  return 1;
}

int arg_typed(call_t *c, napi_value v, arr_t *a, const char *name, napi_typedarray_type t) {
  if (!arg_arr(c, v, a, name)) return 0;
  if (a->type != t && !(t == napi_uint8_array && a->type == napi_uint8_clamped_array))
    return fail(c, 0, "%s must be a %s, got %s", name, type_name(t), type_name(a->type));
  return 1;
}
#define ARG_F32(i, a, name) if (!arg_typed(C, argv[i], a, name, napi_float32_array)) return NULL
#define ARG_I32(i, a, name) if (!arg_typed(C, argv[i], a, name, napi_int32_array)) return NULL
#define ARG_U8(i, a, name) if (!arg_typed(C, argv[i], a, name, napi_uint8_array)) return NULL

int arg_long(call_t *c, napi_value v, long *out, const char *name, long lo, long hi) {
  double d;
  if (napi_get_value_double(c->env, v, &d) != napi_ok) return fail(c, 0, "%s must be a number", name);
  if (!(d == floor(d)) || d < (double)lo || d > (double)hi)
    return fail(c, 1, "%s must be an integer in [%ld, %ld], got %g", name, lo, hi, d);
  *out = (long)d;
  return 1;
}
#define ARG_LONG(i, var, name, lo, hi) long var = 0; if (!arg_long(C, argv[i], &var, name, lo, hi)) return NULL
#define ARG_SIZE(i, var, name) ARG_LONG(i, var, name, 0, MAX_SIZE)

static int arg_float(call_t *c, napi_value v, double *out, const char *name) {
  if (napi_get_value_double(c->env, v, out) != napi_ok) return fail(c, 0, "%s must be a number", name);
  return 1;
}
#define ARG_FLOAT(i, var, name) double var = 0; if (!arg_float(C, argv[i], &var, name)) return NULL

int arg_bool(call_t *c, napi_value v, int *out, const char *name) {
  napi_valuetype t;
  napi_typeof(c->env, v, &t);
  if (t == napi_boolean) { bool b; napi_get_value_bool(c->env, v, &b); *out = b; return 1; }
  if (t == napi_number) { double d; napi_get_value_double(c->env, v, &d); *out = d != 0; return 1; }
  return fail(c, 0, "%s must be a boolean", name);
}
#define ARG_BOOL(i, var, name) int var = 0; if (!arg_bool(C, argv[i], &var, name)) return NULL

/* a * b with overflow and MAX_SIZE checks. */
int mul2(call_t *c, long a, long b, long *out) {
  long r = 0;
  int bad = __builtin_mul_overflow(a, b, &r) || r > MAX_SIZE;
  *out = bad ? 0 : r;
  if (bad) return fail(c, 1, "size overflow (%ld * %ld)", a, b);
  return 1;
}
static int mul3(call_t *c, long a, long b, long d, long *out) {
  long t = 0;
  *out = 0;
  return mul2(c, a, b, &t) && mul2(c, t, d, out);
}
static int mul4(call_t *c, long a, long b, long d, long e, long *out) {
  long t = 0;
  *out = 0;
  return mul3(c, a, b, d, &t) && mul2(c, t, e, out);
}

/* The array must hold elements [off, off + count). */
int need(call_t *c, const arr_t *a, long off, long count, const char *name) {
  if (count <= 0) return 1;
  if (off < 0 || off > a->len || count > a->len - off)
    return fail(c, 1, "%s needs elements [%ld, %ld) but has length %ld", name, off, off + count, a->len);
  return 1;
}
#define NEED(a, off, count, name) if (!need(C, a, off, count, name)) return NULL

/* Highest element index a strided operand touches, +1 (0 if the shape is empty). */
static int extent(call_t *c, const long *shape, int nd, long off, const long *st, long *out) {
  long hi = off;
  for (int d = 0; d < nd; d++) {
    if (shape[d] == 0) { *out = 0; return 1; }
  }
  for (int d = 0; d < nd; d++) {
    long t;
    if (__builtin_mul_overflow(shape[d] - 1, st[d], &t) || __builtin_add_overflow(hi, t, &hi) || hi > MAX_SIZE)
      return fail(c, 1, "strided range overflows");
  }
  *out = hi + 1;
  return 1;
}

/* Float64Array geometry: [ndim, shape..., (offset, strides...) x nops]. */
typedef struct { int nd; long shape[R1_MAX_DIMS]; long off[4]; long st[4][R1_MAX_DIMS]; long total; } geom_t;
static int parse_geom(call_t *c, napi_value v, int nops, geom_t *g) {
  arr_t a;
  if (!arg_typed(c, v, &a, "geometry", napi_float64_array)) return 0;
  const double *G = a.data;
  if (a.len < 1) return fail(c, 1, "geometry is empty");
  double nd = G[0];
  if (!(nd == floor(nd)) || nd < 0 || nd > R1_MAX_DIMS) return fail(c, 1, "geometry: ndim must be in [0, %d], got %g", R1_MAX_DIMS, nd);
  g->nd = (int)nd;
  long want = 1 + g->nd + nops * (1 + g->nd);
  if (a.len < want) return fail(c, 1, "geometry: expected %ld values for %d dims and %d operands, got %ld", want, g->nd, nops, a.len);
  for (long i = 1; i < want; i++)
    if (!(G[i] == floor(G[i])) || G[i] < 0 || G[i] > (double)MAX_SIZE)
      return fail(c, 1, "geometry[%ld] = %g: shapes, offsets and strides must be non-negative integers", i, G[i]);
  g->total = 1;
  for (int d = 0; d < g->nd; d++) {
    g->shape[d] = (long)G[1 + d];
    if (!mul2(c, g->total, g->shape[d], &g->total)) return 0;
  }
  for (int o = 0; o < nops; o++) {
    const double *p = G + 1 + g->nd + o * (1 + g->nd);
    g->off[o] = (long)p[0];
    for (int d = 0; d < g->nd; d++) g->st[o][d] = (long)p[1 + d];
    for (int d = g->nd; d < R1_MAX_DIMS; d++) g->st[o][d] = 0;
  }
  return 1;
}
static int need_strided(call_t *c, const geom_t *g, int o, const arr_t *a, const char *name) {
  long ext;
  if (!extent(c, g->shape, g->nd, g->off[o], g->st[o], &ext)) return 0;
  if (ext > a->len) return fail(c, 1, "%s: offset %ld with strides reaches element %ld but length is %ld", name, g->off[o], ext - 1, a->len);
  return 1;
}
static void make_operand(r1_operand *op, const geom_t *g, int o, const arr_t *a) {
  op->p = (char *)a->data + (size_t)g->off[o] * (size_t)esize_of(a->type);
  memcpy(op->st, g->st[o], sizeof op->st);
}

#define BEGIN(NAME, N) \
  call_t C_ = {env, NAME}; call_t *C = &C_; napi_value argv[(N) > 0 ? (N) : 1]; size_t argc = (N); \
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL; \
  if (argc < (size_t)(N)) { fail(C, 0, "expected %d arguments, got %zu", (N), argc); return NULL; }

/* ------------------------------------------------------------------------------------------------ */
static napi_value f_copy(napi_env env, napi_callback_info info) {
  BEGIN("copy", 3);
  arr_t d, s;
  if (!arg_arr(C, argv[0], &d, "dst") || !arg_arr(C, argv[1], &s, "src")) return NULL;
  if (esize_of(d.type) != esize_of(s.type) || (d.type == napi_float32_array) != (s.type == napi_float32_array))
    return fail(C, 0, "dst (%s) and src (%s) must be the same kind of array", type_name(d.type), type_name(s.type)), NULL;
  geom_t g;
  if (!parse_geom(C, argv[2], 2, &g)) return NULL;
  if (!need_strided(C, &g, 0, &d, "dst") || !need_strided(C, &g, 1, &s, "src")) return NULL;
  r1_operand od, os;
  make_operand(&od, &g, 0, &d);
  make_operand(&os, &g, 1, &s);
  k_copy(g.shape, g.nd, &od, &os, esize_of(d.type));
  return NULL;
}

static napi_value f_cast(napi_env env, napi_callback_info info) {
  BEGIN("cast", 5);
  arr_t d, s;
  ARG_LONG(1, dt, "dstCode", 0, 3);
  ARG_LONG(3, st, "srcCode", 0, 3);
  static const napi_typedarray_type want[4] = {napi_float32_array, napi_float64_array, napi_uint16_array, napi_uint16_array};
  if (!arg_typed(C, argv[0], &d, "dst", want[dt]) || !arg_typed(C, argv[2], &s, "src", want[st])) return NULL;
  if (!(dt == st || dt == T_F32 || st == T_F32)) return fail(C, 1, "unsupported cast pair %ld -> %ld", st, dt), NULL;
  ARG_SIZE(4, n, "n");
  NEED(&d, 0, n, "dst");
  NEED(&s, 0, n, "src");
  k_cast(d.data, (int)dt, s.data, (int)st, n);
  return NULL;
}

static napi_value f_unary(napi_env env, napi_callback_info info) {
  BEGIN("unary", 6);
  ARG_LONG(0, op, "op", 0, U_COUNT - 1);
  arr_t d, s;
  ARG_F32(1, &d, "dst");
  ARG_F32(2, &s, "src");
  ARG_SIZE(3, n, "n");
  ARG_FLOAT(4, a, "s");
  ARG_FLOAT(5, b, "s2");
  NEED(&d, 0, n, "dst");
  NEED(&s, 0, n, "src");
  k_unary((int)op, d.data, s.data, n, (float)a, (float)b);
  return NULL;
}

static napi_value f_unary_grad(napi_env env, napi_callback_info info) {
  BEGIN("unaryGrad", 5);
  ARG_LONG(0, op, "op", 0, G_COUNT - 1);
  arr_t dx, x, dy;
  ARG_F32(1, &dx, "dx");
  ARG_F32(2, &x, "x");
  ARG_F32(3, &dy, "dy");
  ARG_SIZE(4, n, "n");
  NEED(&dx, 0, n, "dx");
  NEED(&x, 0, n, "x");
  NEED(&dy, 0, n, "dy");
  k_unary_grad((int)op, dx.data, x.data, dy.data, n);
  return NULL;
}

/* binary / compare: (op, dst, a, b, geometry with operands a, b); dst contiguous. */
static napi_value binary_like(napi_env env, napi_callback_info info, int is_cmp) {
  BEGIN(is_cmp ? "compare" : "binary", 5);
  ARG_LONG(0, op, "op", 0, (is_cmp ? C_COUNT : B_COUNT) - 1);
  arr_t d, a, b;
  if (is_cmp) { ARG_U8(1, &d, "dst"); } else { ARG_F32(1, &d, "dst"); }
  ARG_F32(2, &a, "a");
  ARG_F32(3, &b, "b");
  geom_t g;
  if (!parse_geom(C, argv[4], 2, &g)) return NULL;
  NEED(&d, 0, g.total, "dst");
  if (!need_strided(C, &g, 0, &a, "a") || !need_strided(C, &g, 1, &b, "b")) return NULL;
  r1_operand oa, ob;
  make_operand(&oa, &g, 0, &a);
  make_operand(&ob, &g, 1, &b);
  if (is_cmp) k_compare((int)op, d.data, g.shape, g.nd, &oa, &ob);
  else k_binary((int)op, d.data, g.shape, g.nd, &oa, &ob);
  return NULL;
}
static napi_value f_binary(napi_env env, napi_callback_info info) { return binary_like(env, info, 0); }
static napi_value f_compare(napi_env env, napi_callback_info info) { return binary_like(env, info, 1); }

static napi_value f_where(napi_env env, napi_callback_info info) {
  BEGIN("where", 5);
  arr_t d, k, a, b;
  ARG_F32(0, &d, "dst");
  ARG_U8(1, &k, "cond");
  ARG_F32(2, &a, "a");
  ARG_F32(3, &b, "b");
  geom_t g;
  if (!parse_geom(C, argv[4], 3, &g)) return NULL;
  NEED(&d, 0, g.total, "dst");
  if (!need_strided(C, &g, 0, &k, "cond") || !need_strided(C, &g, 1, &a, "a") || !need_strided(C, &g, 2, &b, "b")) return NULL;
  r1_operand ok, oa, ob;
  make_operand(&ok, &g, 0, &k);
  make_operand(&oa, &g, 1, &a);
  make_operand(&ob, &g, 2, &b);
  k_where(d.data, g.shape, g.nd, &ok, &oa, &ob);
  return NULL;
}

static napi_value f_reduce(napi_env env, napi_callback_info info) {
  BEGIN("reduce", 6);
  ARG_LONG(0, op, "op", 0, R_COUNT - 1);
  arr_t d, s;
  ARG_F32(1, &d, "dst");
  ARG_F32(2, &s, "src");
  ARG_SIZE(3, outer, "outer");
  ARG_SIZE(4, n, "n");
  ARG_SIZE(5, inner, "inner");
  long ns, nd;
  if (!mul3(C, outer, n, inner, &ns) || !mul2(C, outer, inner, &nd)) return NULL;
  NEED(&d, 0, nd, "dst");
  NEED(&s, 0, ns, "src");
  k_reduce((int)op, d.data, s.data, outer, n, inner);
  return NULL;
}

static napi_value f_read_probe(napi_env env, napi_callback_info info) {
  BEGIN("readProbe", 3);
  arr_t d, s;
  ARG_F32(0, &d, "dst");
  ARG_F32(1, &s, "src");
  ARG_LONG(2, streams, "streams", 1, 64);
  NEED(&d, 0, r1_num_threads(), "dst");
  k_read_probe(d.data, s.data, (long)s.len, (int)streams);
  return NULL;
}

static napi_value f_argreduce(napi_env env, napi_callback_info info) {
  BEGIN("argReduce", 6);
  ARG_BOOL(0, is_min, "isMin");
  arr_t d, s;
  ARG_I32(1, &d, "dst");
  ARG_F32(2, &s, "src");
  ARG_SIZE(3, outer, "outer");
  ARG_SIZE(4, n, "n");
  ARG_SIZE(5, inner, "inner");
  long ns, nd;
  if (!mul3(C, outer, n, inner, &ns) || !mul2(C, outer, inner, &nd)) return NULL;
  NEED(&d, 0, nd, "dst");
  NEED(&s, 0, ns, "src");
  k_argreduce(is_min, d.data, s.data, outer, n, inner);
  return NULL;
}

/* Operand of a batched GEMM: `batch` matrices of rows x cols, row stride ld, batch stride bs. */
static int need_matrix(call_t *c, const arr_t *a, long off, long bs, long ld, long batch, long rows, long cols, const char *name) {
  if (batch == 0 || rows == 0 || cols == 0) return 1;
  if (ld < cols) return fail(c, 1, "%s: leading dimension %ld is less than the row length %ld", name, ld, cols);
  long t1, t2, last;
  if (__builtin_mul_overflow(batch - 1, bs, &t1) || __builtin_mul_overflow(rows - 1, ld, &t2) ||
      __builtin_add_overflow(off, t1, &last) || __builtin_add_overflow(last, t2, &last) ||
      __builtin_add_overflow(last, cols, &last))
    return fail(c, 1, "%s: range overflows", name);
  return need(c, a, 0, last, name) && need(c, a, off, 1, name);
}

static napi_value f_matmul(napi_env env, napi_callback_info info) {
  BEGIN("matmul", 17);
  arr_t cc, a, b;
  ARG_F32(0, &cc, "c");
  ARG_SIZE(1, cOff, "cOffset");
  ARG_F32(2, &a, "a");
  ARG_SIZE(3, aOff, "aOffset");
  ARG_SIZE(4, aBS, "aBatchStride");
  ARG_SIZE(5, lda, "lda");
  ARG_BOOL(6, tA, "transA");
  ARG_F32(7, &b, "b");
  ARG_SIZE(8, bOff, "bOffset");
  ARG_SIZE(9, bBS, "bBatchStride");
  ARG_SIZE(10, ldb, "ldb");
  ARG_BOOL(11, tB, "transB");
  ARG_SIZE(12, batch, "batch");
  ARG_SIZE(13, m, "m");
  ARG_SIZE(14, n, "n");
  ARG_SIZE(15, k, "k");
  ARG_BOOL(16, acc, "accumulate");
  long csz;
  if (!mul3(C, batch, m, n, &csz)) return NULL;
  NEED(&cc, cOff, csz, "c");
  if (csz == 0) return NULL;
  if (k > 0) {
    if (!need_matrix(C, &a, aOff, aBS, lda, batch, tA ? k : m, tA ? m : k, "a")) return NULL;
    if (!need_matrix(C, &b, bOff, bBS, ldb, batch, tB ? n : k, tB ? k : n, "b")) return NULL;
  }
  k_matmul((float *)cc.data + cOff, (const float *)a.data + (k > 0 ? aOff : 0), aBS, lda, tA,
           (const float *)b.data + (k > 0 ? bOff : 0), bBS, ldb, tB, batch, m, n, k, acc);
  return NULL;
}

static napi_value f_softmax(napi_env env, napi_callback_info info) {
  BEGIN("softmax", 5);
  arr_t d, s;
  ARG_F32(0, &d, "dst");
  ARG_F32(1, &s, "src");
  ARG_SIZE(2, rows, "rows");
  ARG_SIZE(3, cols, "cols");
  ARG_BOOL(4, lg, "log");
  long n;
  if (!mul2(C, rows, cols, &n)) return NULL;
  NEED(&d, 0, n, "dst");
  NEED(&s, 0, n, "src");
  k_softmax(d.data, s.data, rows, cols, lg);
  return NULL;
}

static napi_value f_softmax_grad(napi_env env, napi_callback_info info) {
  BEGIN("softmaxGrad", 6);
  arr_t dx, y, dy;
  ARG_F32(0, &dx, "dx");
  ARG_F32(1, &y, "y");
  ARG_F32(2, &dy, "dy");
  ARG_SIZE(3, rows, "rows");
  ARG_SIZE(4, cols, "cols");
  ARG_BOOL(5, lg, "log");
  long n;
  if (!mul2(C, rows, cols, &n)) return NULL;
  NEED(&dx, 0, n, "dx");
  NEED(&y, 0, n, "y");
  NEED(&dy, 0, n, "dy");
  k_softmax_grad(dx.data, y.data, dy.data, rows, cols, lg);
  return NULL;
}

static napi_value f_rmsnorm(napi_env env, napi_callback_info info) {
  BEGIN("rmsnorm", 7);
  arr_t y, rs, x, w;
  ARG_F32(0, &y, "y");
  ARG_F32(1, &rs, "rstd");
  ARG_F32(2, &x, "x");
  ARG_F32(3, &w, "w");
  ARG_SIZE(4, rows, "rows");
  ARG_SIZE(5, cols, "cols");
  ARG_FLOAT(6, eps, "eps");
  long n;
  if (!mul2(C, rows, cols, &n)) return NULL;
  NEED(&y, 0, n, "y");
  NEED(&x, 0, n, "x");
  NEED(&rs, 0, rows, "rstd");
  if (rows > 0) NEED(&w, 0, cols, "w");
  k_rmsnorm(y.data, rs.data, x.data, w.data, rows, cols, (float)eps);
  return NULL;
}

static napi_value f_rmsnorm_grad(napi_env env, napi_callback_info info) {
  BEGIN("rmsnormGrad", 8);
  arr_t dx, dw, dy, x, w, rs;
  ARG_F32(0, &dx, "dx");
  ARG_F32(1, &dw, "dw");
  ARG_F32(2, &dy, "dy");
  ARG_F32(3, &x, "x");
  ARG_F32(4, &w, "w");
  ARG_F32(5, &rs, "rstd");
  ARG_SIZE(6, rows, "rows");
  ARG_SIZE(7, cols, "cols");
  long n;
  if (!mul2(C, rows, cols, &n)) return NULL;
  NEED(&dx, 0, n, "dx");
  NEED(&dy, 0, n, "dy");
  NEED(&x, 0, n, "x");
  NEED(&dw, 0, cols, "dw");
  NEED(&w, 0, cols, "w");
  NEED(&rs, 0, rows, "rstd");
  k_rmsnorm_grad(dx.data, dw.data, dy.data, x.data, w.data, rs.data, rows, cols);
  return NULL;
}

static napi_value f_rope(napi_env env, napi_callback_info info) {
  BEGIN("rope", 11);
  arr_t d, x, cs, sn, pos;
  ARG_F32(0, &d, "dst");
  ARG_F32(1, &x, "x");
  ARG_F32(2, &cs, "cos");
  ARG_F32(3, &sn, "sin");
  ARG_I32(4, &pos, "pos");
  ARG_SIZE(5, T, "T");
  ARG_SIZE(6, H, "H");
  ARG_SIZE(7, D, "D");
  ARG_SIZE(8, R, "R");
  ARG_BOOL(9, inter, "interleaved");
  ARG_BOOL(10, inv, "inverse");
  if (R > D || R % 2 != 0) return fail(C, 1, "rotary dims R = %ld must be even and <= D = %ld", R, D), NULL;
  long n;
  if (!mul3(C, T, H, D, &n)) return NULL;
  NEED(&d, 0, n, "dst");
  NEED(&x, 0, n, "x");
  if (n > 0) NEED(&pos, 0, T, "pos");
  long half = R / 2;
  if (half > 0 && n > 0) {
    long P = (cs.len < sn.len ? cs.len : sn.len) / half;
    const int32_t *p = pos.data;
    for (long t = 0; t < T; t++)
      if (p[t] < 0 || p[t] >= P)
        return fail(C, 1, "pos[%ld] = %d is outside the cos/sin tables (%ld positions of %ld pairs)", t, p[t], P, half), NULL;
  }
  if (n > 0) k_rope(d.data, x.data, cs.data, sn.data, pos.data, T, H, D, R, inter, inv);
  return NULL;
}

static int check_targets(call_t *c, const arr_t *t, long rows, long V, long ign) {
  if (!need(c, t, 0, rows, "targets")) return 0;
  const int32_t *p = t->data;
  for (long r = 0; r < rows; r++)
    if (p[r] != ign && (p[r] < 0 || p[r] >= V))
      return fail(c, 1, "targets[%ld] = %d is outside [0, %ld) and is not ignoreIndex %ld", r, p[r], V, ign);
  return 1;
}

static napi_value f_xent(napi_env env, napi_callback_info info) {
  BEGIN("crossEntropy", 7);
  arr_t loss, lse, lg, t;
  ARG_F32(0, &loss, "loss");
  ARG_F32(1, &lse, "lse");
  ARG_F32(2, &lg, "logits");
  ARG_I32(3, &t, "targets");
  ARG_SIZE(4, rows, "rows");
  ARG_SIZE(5, V, "V");
  ARG_LONG(6, ign, "ignoreIndex", -MAX_SIZE, MAX_SIZE);
  long n;
  if (!mul2(C, rows, V, &n)) return NULL;
  NEED(&loss, 0, rows, "loss");
  NEED(&lse, 0, rows, "lse");
  NEED(&lg, 0, n, "logits");
  if (!check_targets(C, &t, rows, V, ign)) return NULL;
  k_xent(loss.data, lse.data, lg.data, t.data, rows, V, ign);
  return NULL;
}

static napi_value f_greedy_pick(napi_env env, napi_callback_info info) {
  BEGIN("greedyPick", 6);
  arr_t ids, loss, lse, lg;
  ARG_I32(0, &ids, "ids");
  ARG_F32(1, &loss, "loss");
  ARG_F32(2, &lse, "lse");
  ARG_F32(3, &lg, "logits");
  ARG_SIZE(4, rows, "rows");
  ARG_SIZE(5, V, "V");
  long n;
  if (!mul2(C, rows, V, &n)) return NULL;
  NEED(&ids, 0, rows, "ids");
  NEED(&loss, 0, rows, "loss");
  NEED(&lse, 0, rows, "lse");
  NEED(&lg, 0, n, "logits");
  if (V < 1 && rows > 0) return fail(C, 1, "V = %ld: a row of logits needs at least one entry", V), NULL;
  k_greedy_pick(ids.data, loss.data, lse.data, lg.data, rows, V);
  return NULL;
}

static napi_value f_xent_grad(napi_env env, napi_callback_info info) {
  BEGIN("crossEntropyGrad", 8);
  arr_t dl, lg, lse, t, dloss;
  ARG_F32(0, &dl, "dlogits");
  ARG_F32(1, &lg, "logits");
  ARG_F32(2, &lse, "lse");
  ARG_I32(3, &t, "targets");
  ARG_F32(4, &dloss, "dloss");
  ARG_SIZE(5, rows, "rows");
  ARG_SIZE(6, V, "V");
  ARG_LONG(7, ign, "ignoreIndex", -MAX_SIZE, MAX_SIZE);
  long n;
  if (!mul2(C, rows, V, &n)) return NULL;
  NEED(&dl, 0, n, "dlogits");
  NEED(&lg, 0, n, "logits");
  NEED(&lse, 0, rows, "lse");
  NEED(&dloss, 0, rows, "dloss");
  if (!check_targets(C, &t, rows, V, ign)) return NULL;
  k_xent_grad(dl.data, lg.data, lse.data, t.data, dloss.data, rows, V, ign);
  return NULL;
}

/* Attention shape arguments start at argv[first]: B, Hq, Hkv, Sq, Sk, Dk, Dv, scale, causal. */
typedef struct { long B, Hq, Hkv, Sq, Sk, Dk, Dv; double scale; int causal; long nq, nk, nv, no, nl; } attn_dims;
static int attn_args(call_t *c, napi_value *argv, int first, attn_dims *a) {
  long *f[7] = {&a->B, &a->Hq, &a->Hkv, &a->Sq, &a->Sk, &a->Dk, &a->Dv};
  static const char *names[7] = {"B", "Hq", "Hkv", "Sq", "Sk", "Dk", "Dv"};
  for (int i = 0; i < 7; i++) if (!arg_long(c, argv[first + i], f[i], names[i], 0, MAX_SIZE)) return 0;
  if (!arg_float(c, argv[first + 7], &a->scale, "scale") || !arg_bool(c, argv[first + 8], &a->causal, "causal")) return 0;
  if (a->Hkv == 0 || a->Hq % a->Hkv != 0) return fail(c, 1, "Hq = %ld must be a multiple of Hkv = %ld (>= 1)", a->Hq, a->Hkv);
  return mul4(c, a->B, a->Hq, a->Sq, a->Dk, &a->nq) && mul4(c, a->B, a->Hkv, a->Sk, a->Dk, &a->nk) &&
         mul4(c, a->B, a->Hkv, a->Sk, a->Dv, &a->nv) && mul4(c, a->B, a->Hq, a->Sq, a->Dv, &a->no) &&
         mul3(c, a->B, a->Hq, a->Sq, &a->nl);
}
/* mask (Float32Array or null) and its Float64Array [offset, s0, s1, s2, s3]. */
static int attn_mask(call_t *c, napi_value mv, napi_value gv, const attn_dims *a, const float **mask, long *mst) {
  napi_valuetype t;
  napi_typeof(c->env, mv, &t);
  *mask = NULL;
  if (t == napi_null || t == napi_undefined) return 1;
  arr_t m, g;
  if (!arg_typed(c, mv, &m, "mask", napi_float32_array) || !arg_typed(c, gv, &g, "maskGeometry", napi_float64_array)) return 0;
  if (g.len < 5) return fail(c, 1, "maskGeometry needs [offset, s0, s1, s2, s3]");
  const double *G = g.data;
  for (int i = 0; i < 5; i++)
    if (!(G[i] == floor(G[i])) || G[i] < 0 || G[i] > (double)MAX_SIZE)
      return fail(c, 1, "maskGeometry[%d] = %g must be a non-negative integer", i, G[i]);
  long shape[4] = {a->B, a->Hq, a->Sq, a->Sk}, st[4] = {(long)G[1], (long)G[2], (long)G[3], (long)G[4]}, ext;
  if (!extent(c, shape, 4, (long)G[0], st, &ext)) return 0;
  if (ext > m.len) return fail(c, 1, "mask: offset and strides reach element %ld but length is %ld", ext - 1, m.len);
  *mask = (const float *)m.data + (long)G[0];
  for (int i = 0; i < 4; i++) mst[i] = st[i];
  return 1;
}

static napi_value f_attention(napi_env env, napi_callback_info info) {
  BEGIN("attention", 17);
  arr_t out, lse, q, k, v;
  ARG_F32(0, &out, "out");
  ARG_F32(1, &lse, "lse");
  ARG_F32(2, &q, "q");
  ARG_F32(3, &k, "k");
  ARG_F32(4, &v, "v");
  attn_dims a;
  if (!attn_args(C, argv, 7, &a)) return NULL;
  NEED(&out, 0, a.no, "out");
  NEED(&lse, 0, a.nl, "lse");
  NEED(&q, 0, a.nq, "q");
  /* argv[16]: null (dense k, v) or a Float64Array [kRow, kHead, vRow, vHead] of element strides (forward only). */
  long kvst[4] = {a.Dk, a.Sk * a.Dk, a.Dv, a.Sk * a.Dv};
  int strided = 0;
  {
    napi_valuetype t;
    napi_typeof(env, argv[16], &t);
    if (t != napi_null && t != napi_undefined) {
      arr_t g;
      if (!arg_typed(C, argv[16], &g, "kvStrides", napi_float64_array)) return NULL;
      if (g.len < 4) { fail(C, 1, "kvStrides needs [kRow, kHead, vRow, vHead]"); return NULL; }
      const double *G = g.data;
      for (int i = 0; i < 4; i++)
        if (!(G[i] == floor(G[i])) || G[i] < 0 || G[i] > (double)MAX_SIZE) { fail(C, 1, "kvStrides[%d] = %g must be a non-negative integer", i, G[i]); return NULL; }
      for (int i = 0; i < 4; i++) kvst[i] = (long)G[i];
      if (kvst[0] < a.Dk || kvst[2] < a.Dv) { fail(C, 1, "kvStrides: row strides (%ld, %ld) shorter than Dk = %ld / Dv = %ld", kvst[0], kvst[2], a.Dk, a.Dv); return NULL; }
      strided = 1;
    }
  }
  /* Extents: the last (batch, head)'s last row's last element, +1. */
  const long nbh = a.B * a.Hkv;
  const long kext = nbh > 0 && a.Sk > 0 ? (nbh - 1) * kvst[1] + (a.Sk - 1) * kvst[0] + a.Dk : 0;
  const long vext = nbh > 0 && a.Sk > 0 ? (nbh - 1) * kvst[3] + (a.Sk - 1) * kvst[2] + a.Dv : 0;
  NEED(&k, 0, strided ? kext : a.nk, "k");
  NEED(&v, 0, strided ? vext : a.nv, "v");
  const float *mask;
  long mst[4] = {0, 0, 0, 0};
  if (!attn_mask(C, argv[5], argv[6], &a, &mask, mst)) return NULL;
  k_attention(out.data, lse.data, q.data, k.data, v.data, mask, mst, a.B, a.Hq, a.Hkv, a.Sq, a.Sk, a.Dk, a.Dv,
              (float)a.scale, a.causal, kvst);
  return NULL;
}

/* attentionRagged(out, q, kNew, vNew | null, kCaches[], vCaches[] | null, geom, Hq, Hkv, Dk, Dv, scale, valuesInKeys):
 * geom is a Float64Array of [n, past, cap, kOffset, vOffset] per sequence; kCaches[s] holds [Hkv, cap, Dk] from
 * kOffset, vCaches[s] [Hkv, cap, Dv] from vOffset (vNew, vCaches and vOffset unused when valuesInKeys). The caches
 * are all Float32Array, or all Uint16Array (bf16 bit patterns; offsets in elements). */
static napi_value f_attention_ragged(napi_env env, napi_callback_info info) {
  BEGIN("attentionRagged", 13);
  arr_t out, q, kn, vn, g;
  ARG_F32(0, &out, "out");
  ARG_F32(1, &q, "q");
  ARG_F32(2, &kn, "kNew");
  if (!arg_typed(C, argv[6], &g, "geom", napi_float64_array)) return NULL;
  ARG_SIZE(7, Hq, "Hq");
  ARG_SIZE(8, Hkv, "Hkv");
  ARG_SIZE(9, Dk, "Dk");
  ARG_SIZE(10, Dv, "Dv");
  ARG_FLOAT(11, scale, "scale");
  ARG_BOOL(12, vink, "valuesInKeys");
  if (Hkv == 0 || Hq % Hkv != 0) { fail(C, 1, "Hq = %ld must be a multiple of Hkv = %ld (>= 1)", Hq, Hkv); return NULL; }
  if (vink && Dv > Dk) { fail(C, 1, "valuesInKeys: Dv = %ld exceeds Dk = %ld", Dv, Dk); return NULL; }
  if (g.len % 5 != 0) { fail(C, 1, "geom length %ld is not a multiple of 5 ([n, past, cap, kOffset, vOffset] per sequence)", g.len); return NULL; }
  const long nseg = g.len / 5;
  uint32_t nk = 0, nv = 0;
  if (napi_get_array_length(env, argv[4], &nk) != napi_ok) { fail(C, 0, "kCaches must be an array"); return NULL; }
  if (!vink) {
    if (!arg_typed(C, argv[3], &vn, "vNew", napi_float32_array)) return NULL;
    if (napi_get_array_length(env, argv[5], &nv) != napi_ok) { fail(C, 0, "vCaches must be an array"); return NULL; }
  }
  if ((long)nk != nseg || (!vink && (long)nv != nseg)) { fail(C, 1, "%ld sequences in geom but %u key and %u value caches", nseg, nk, nv); return NULL; }
  napi_typedarray_type ct = napi_float32_array; /* the caches' type: that of the first key cache */
  if (nseg > 0) {
    napi_value e0;
    arr_t a0;
    if (napi_get_element(env, argv[4], 0, &e0) != napi_ok || !arg_arr(C, e0, &a0, "kCaches[0]")) return NULL;
    if (a0.type != napi_float32_array && a0.type != napi_uint16_array) {
      fail(C, 0, "kCaches[0] must be a Float32Array or a Uint16Array (bf16)");
      return NULL;
    }
    ct = a0.type;
  }
  const long es = ct == napi_uint16_array ? 2 : 4;
  void **ptr = malloc(sizeof(void *) * (size_t)(2 * nseg + 1));
  long *geom = malloc(sizeof(long) * (size_t)(3 * nseg + 1));
  if (!ptr || !geom) { free(ptr); free(geom); fail(C, 1, "out of memory"); return NULL; }
  void **kc = ptr, **vc = ptr + nseg;
  long N = 0;
  int ok = 1;
  const double *G = g.data;
  for (long s = 0; s < nseg && ok; s++) {
    for (int i = 0; i < 5 && ok; i++)
      if (!(G[5 * s + i] == floor(G[5 * s + i])) || G[5 * s + i] < 0 || G[5 * s + i] > (double)MAX_SIZE)
        ok = fail(C, 1, "geom[%ld] = %g must be a non-negative integer", 5 * s + i, G[5 * s + i]);
    if (!ok) break;
    const long n = (long)G[5 * s], past = (long)G[5 * s + 1], cap = (long)G[5 * s + 2];
    if (past + n > cap) { ok = fail(C, 1, "sequence %ld: %ld cached + %ld new rows exceed the cache capacity %ld", s, past, n, cap); break; }
    long rows = 0, nkc = 0, nvc = 0;
    ok = mul2(C, Hkv, cap, &rows) && mul2(C, rows, Dk, &nkc) && mul2(C, rows, Dv, &nvc);
    napi_value e;
    arr_t a;
    ok = ok && napi_get_element(env, argv[4], (uint32_t)s, &e) == napi_ok && arg_typed(C, e, &a, "kCaches[i] (all of one type)", ct) &&
         need(C, &a, (long)G[5 * s + 3], nkc, "kCaches[i]");
    if (ok) kc[s] = (char *)a.data + (long)G[5 * s + 3] * es;
    if (ok && !vink) {
      ok = napi_get_element(env, argv[5], (uint32_t)s, &e) == napi_ok && arg_typed(C, e, &a, "vCaches[i] (the key caches' type)", ct) &&
           need(C, &a, (long)G[5 * s + 4], nvc, "vCaches[i]");
      if (ok) vc[s] = (char *)a.data + (long)G[5 * s + 4] * es;
    }
    geom[3 * s] = n; geom[3 * s + 1] = past; geom[3 * s + 2] = cap;
    N += n;
  }
  long nq = 0, nkn = 0, nvn = 0, no = 0;
  ok = ok && mul3(C, N, Hq, Dk, &nq) && mul3(C, N, Hkv, Dk, &nkn) && mul3(C, N, Hkv, Dv, &nvn) && mul3(C, N, Hq, Dv, &no) &&
       need(C, &q, 0, nq, "q") && need(C, &kn, 0, nkn, "kNew") && (vink || need(C, &vn, 0, nvn, "vNew")) &&
       need(C, &out, 0, no, "out");
  if (ok) k_attention_ragged(out.data, q.data, kn.data, vink ? NULL : vn.data, kc, vc, geom, nseg, Hq, Hkv, Dk, Dv, (float)scale, vink, es == 2);
  free(ptr);
  free(geom);
  return NULL;
}

static napi_value f_attention_grad(napi_env env, napi_callback_info info) {
  BEGIN("attentionGrad", 20);
  arr_t dq, dk, dv, dout, q, k, v, out, lse;
  ARG_F32(0, &dq, "dq");
  ARG_F32(1, &dk, "dk");
  ARG_F32(2, &dv, "dv");
  ARG_F32(3, &dout, "dout");
  ARG_F32(4, &q, "q");
  ARG_F32(5, &k, "k");
  ARG_F32(6, &v, "v");
  ARG_F32(7, &out, "out");
  ARG_F32(8, &lse, "lse");
  attn_dims a;
  if (!attn_args(C, argv, 11, &a)) return NULL;
  NEED(&dq, 0, a.nq, "dq");
  NEED(&dk, 0, a.nk, "dk");
  NEED(&dv, 0, a.nv, "dv");
  NEED(&dout, 0, a.no, "dout");
  NEED(&q, 0, a.nq, "q");
  NEED(&k, 0, a.nk, "k");
  NEED(&v, 0, a.nv, "v");
  NEED(&out, 0, a.no, "out");
  NEED(&lse, 0, a.nl, "lse");
  const float *mask;
  long mst[4] = {0, 0, 0, 0};
  if (!attn_mask(C, argv[9], argv[10], &a, &mask, mst)) return NULL;
  k_attention_grad(dq.data, dk.data, dv.data, dout.data, q.data, k.data, v.data, out.data, lse.data, mask, mst,
                   a.B, a.Hq, a.Hkv, a.Sq, a.Sk, a.Dk, a.Dv, (float)a.scale, a.causal);
  return NULL;
}

static napi_value f_silu_mul(napi_env env, napi_callback_info info) {
  BEGIN("siluMul", 4);
  arr_t y, a, b;
  ARG_F32(0, &y, "y");
  ARG_F32(1, &a, "a");
  ARG_F32(2, &b, "b");
  ARG_SIZE(3, n, "n");
  NEED(&y, 0, n, "y");
  NEED(&a, 0, n, "a");
  NEED(&b, 0, n, "b");
  k_silu_mul(y.data, a.data, b.data, n);
  return NULL;
}

static napi_value f_silu_mul_grad(napi_env env, napi_callback_info info) {
  BEGIN("siluMulGrad", 6);
  arr_t da, db, a, b, dy;
  ARG_F32(0, &da, "da");
  ARG_F32(1, &db, "db");
  ARG_F32(2, &a, "a");
  ARG_F32(3, &b, "b");
  ARG_F32(4, &dy, "dy");
  ARG_SIZE(5, n, "n");
  NEED(&da, 0, n, "da");
  NEED(&db, 0, n, "db");
  NEED(&a, 0, n, "a");
  NEED(&b, 0, n, "b");
  NEED(&dy, 0, n, "dy");
  k_silu_mul_grad(da.data, db.data, a.data, b.data, dy.data, n);
  return NULL;
}

static int check_indices(call_t *c, const arr_t *idx, long count, long hi, const char *name) {
  if (!need(c, idx, 0, count, name)) return 0;
  const int32_t *p = idx->data;
  for (long i = 0; i < count; i++)
    if (p[i] < 0 || p[i] >= hi) return fail(c, 1, "%s[%ld] = %d is outside [0, %ld)", name, i, p[i], hi);
  return 1;
}

/* indexSelect / indexAdd / gather / scatter share (dst, src, idx, outer, nBig, nIdx, inner). */
typedef enum { IX_SELECT, IX_ADD, IX_GATHER, IX_SCATTER } ix_kind;
static napi_value index_like(napi_env env, napi_callback_info info, ix_kind kind) {
  static const char *names[4] = {"indexSelect", "indexAdd", "gather", "scatter"};
  BEGIN(names[kind], kind == IX_SCATTER ? 8 : 7);
  arr_t d, s, idx;
  if (kind == IX_SELECT || kind == IX_GATHER) {
    if (!arg_arr(C, argv[0], &d, "dst") || !arg_arr(C, argv[1], &s, "src")) return NULL;
    if (d.type != s.type) return fail(C, 0, "dst (%s) and src (%s) must be the same kind of array", type_name(d.type), type_name(s.type)), NULL;
  } else {
    ARG_F32(0, &d, "dst");
    ARG_F32(1, &s, "src");
  }
  ARG_I32(2, &idx, "idx");
  ARG_SIZE(3, outer, "outer");
  ARG_SIZE(4, nBig, kind == IX_SELECT || kind == IX_GATHER ? "nSrc" : "nDst");
  ARG_SIZE(5, nIdx, "nIdx");
  ARG_SIZE(6, inner, "inner");
  int acc = 0;
  if (kind == IX_SCATTER && !arg_bool(C, argv[7], &acc, "accumulate")) return NULL;
  long nb, ns, ni;
  if (!mul3(C, outer, nBig, inner, &nb) || !mul3(C, outer, nIdx, inner, &ns) || !mul2(C, outer, nIdx, &ni)) return NULL;
  long big_len = nb, small_len = ns;
  const arr_t *big = (kind == IX_SELECT || kind == IX_GATHER) ? &s : &d;
  const arr_t *small = (kind == IX_SELECT || kind == IX_GATHER) ? &d : &s;
  NEED(big, 0, big_len, kind == IX_SELECT || kind == IX_GATHER ? "src" : "dst");
  NEED(small, 0, small_len, kind == IX_SELECT || kind == IX_GATHER ? "dst" : "src");
  if (ns == 0) return NULL;
  if (kind == IX_SELECT || kind == IX_ADD) {
    if (!check_indices(C, &idx, nIdx, nBig, "idx")) return NULL;
  } else {
    if (!check_indices(C, &idx, ns, nBig, "idx")) return NULL;
  }
  switch (kind) {
    case IX_SELECT: k_index_select(d.data, s.data, idx.data, outer, nBig, nIdx, inner, esize_of(d.type)); break;
    case IX_ADD: k_index_add(d.data, s.data, idx.data, outer, nBig, nIdx, inner); break;
    case IX_GATHER: k_gather(d.data, s.data, idx.data, outer, nBig, nIdx, inner, esize_of(d.type)); break;
    case IX_SCATTER: k_scatter(d.data, s.data, idx.data, outer, nBig, nIdx, inner, acc); break;
  }
  (void)ni;
  return NULL;
}
static napi_value f_index_select(napi_env env, napi_callback_info info) { return index_like(env, info, IX_SELECT); }
static napi_value f_index_add(napi_env env, napi_callback_info info) { return index_like(env, info, IX_ADD); }
static napi_value f_gather(napi_env env, napi_callback_info info) { return index_like(env, info, IX_GATHER); }
static napi_value f_scatter(napi_env env, napi_callback_info info) { return index_like(env, info, IX_SCATTER); }

static napi_value f_topk(napi_env env, napi_callback_info info) {
  BEGIN("topk", 7);
  arr_t vals, inds, s;
  ARG_F32(0, &vals, "values");
  ARG_I32(1, &inds, "indices");
  ARG_F32(2, &s, "src");
  ARG_SIZE(3, rows, "rows");
  ARG_SIZE(4, n, "n");
  ARG_SIZE(5, k, "k");
  ARG_BOOL(6, largest, "largest");
  if (k > n) return fail(C, 1, "k = %ld exceeds n = %ld", k, n), NULL;
  if (n > 2147483647L) return fail(C, 1, "n = %ld exceeds the int32 index range", n), NULL;
  long ns, nk;
  if (!mul2(C, rows, n, &ns) || !mul2(C, rows, k, &nk)) return NULL;
  NEED(&vals, 0, nk, "values");
  NEED(&inds, 0, nk, "indices");
  NEED(&s, 0, ns, "src");
  k_topk(vals.data, inds.data, s.data, rows, n, k, largest);
  return NULL;
}

static napi_value f_adamw(napi_env env, napi_callback_info info) {
  BEGIN("adamw", 12);
  arr_t p, g, m, v;
  ARG_F32(0, &p, "p");
  ARG_F32(1, &g, "g");
  ARG_F32(2, &m, "m");
  ARG_F32(3, &v, "v");
  ARG_SIZE(4, n, "n");
  ARG_FLOAT(5, lr, "lr");
  ARG_FLOAT(6, b1, "b1");
  ARG_FLOAT(7, b2, "b2");
  ARG_FLOAT(8, eps, "eps");
  ARG_FLOAT(9, wd, "wd");
  ARG_FLOAT(10, bc1, "bc1");
  ARG_FLOAT(11, bc2, "bc2");
  NEED(&p, 0, n, "p");
  NEED(&g, 0, n, "g");
  NEED(&m, 0, n, "m");
  NEED(&v, 0, n, "v");
  k_adamw(p.data, g.data, m.data, v.data, n, lr, b1, b2, eps, wd, bc1, bc2);
  return NULL;
}

static napi_value f_isa(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value r;
  napi_create_string_utf8(env, r1_isa_name(r1_isa()), NAPI_AUTO_LENGTH, &r);
  return r;
}
static napi_value f_gfni(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value r;
  napi_get_boolean(env, r1_cpu_gfni() != 0, &r);
  return r;
}
static napi_value f_get_threads(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value r;
  napi_create_int32(env, r1_num_threads(), &r);
  return r;
}
static napi_value f_set_threads(napi_env env, napi_callback_info info) {
  BEGIN("setThreads", 1);
  ARG_LONG(0, n, "n", 1, 64);
  r1_set_num_threads((int)n);
  return NULL;
}

static napi_value init(napi_env env, napi_value exports) {
  static const struct { const char *name; napi_callback fn; } fns[] = {
    {"copy", f_copy}, {"cast", f_cast}, {"unary", f_unary}, {"unaryGrad", f_unary_grad},
    {"binary", f_binary}, {"compare", f_compare}, {"where", f_where}, {"reduce", f_reduce}, {"readProbe", f_read_probe},
    {"argReduce", f_argreduce}, {"matmul", f_matmul}, {"softmax", f_softmax}, {"softmaxGrad", f_softmax_grad},
    {"rmsnorm", f_rmsnorm}, {"rmsnormGrad", f_rmsnorm_grad}, {"rope", f_rope}, {"crossEntropy", f_xent}, {"greedyPick", f_greedy_pick},
    {"crossEntropyGrad", f_xent_grad}, {"attention", f_attention}, {"attentionRagged", f_attention_ragged}, {"attentionGrad", f_attention_grad},
    {"siluMul", f_silu_mul}, {"siluMulGrad", f_silu_mul_grad}, {"indexSelect", f_index_select},
    {"indexAdd", f_index_add}, {"gather", f_gather}, {"scatter", f_scatter}, {"topk", f_topk},
    {"adamw", f_adamw}, {"isa", f_isa}, {"gfni", f_gfni}, {"getThreads", f_get_threads}, {"setThreads", f_set_threads},
    {"fp8Encode", r1_napi_fp8_encode}, {"fp8Decode", r1_napi_fp8_decode}, {"fp8Gemm", r1_napi_fp8_gemm}, {"fp8QuantizeTiles", r1_napi_fp8_quantize_tiles},
    {"qgemm", r1_napi_qgemm}, {"qdequant", r1_napi_qdequant}, {"qpanelPack", r1_napi_qpanel_pack},
    {"qpanelPreferred", r1_napi_qpanel_preferred}, {"qpanelGlu", r1_napi_qpanel_glu}, {"gemmGrouped", r1_napi_gemm_grouped},
  };
  for (size_t i = 0; i < sizeof fns / sizeof fns[0]; i++) {
    napi_value f;
    napi_create_function(env, fns[i].name, NAPI_AUTO_LENGTH, fns[i].fn, NULL, &f);
    napi_set_named_property(env, exports, fns[i].name, f);
  }
  return exports;
}

NAPI_MODULE_INIT() { return init(env, exports); }
