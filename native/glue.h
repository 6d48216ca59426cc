/* Argument checking shared by the N-API entry points (defined in addon.c): every size and offset is checked
 * against the typed arrays before a kernel runs; a bad call throws RangeError/TypeError, never crashes. */
#ifndef R1_GLUE_H
#define R1_GLUE_H
#include <node_api.h>

#define MAX_SIZE (1L << 53) /* largest integer a JS number holds exactly */

typedef struct { napi_env env; const char *fn; } call_t;
typedef struct { void *data; long len; napi_typedarray_type type; } arr_t;

int fail(call_t *c, int range, const char *fmt, ...);
int arg_arr(call_t *c, napi_value v, arr_t *a, const char *name);
int arg_typed(call_t *c, napi_value v, arr_t *a, const char *name, napi_typedarray_type t);
int arg_long(call_t *c, napi_value v, long *out, const char *name, long lo, long hi);
int arg_bool(call_t *c, napi_value v, int *out, const char *name);
/* a * b with overflow and MAX_SIZE checks. */
int mul2(call_t *c, long a, long b, long *out);
/* The array must hold elements [off, off + count). */
int need(call_t *c, const arr_t *a, long off, long count, const char *name);
#endif
