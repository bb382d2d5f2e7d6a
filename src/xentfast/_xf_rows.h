/* Row primitives of xentfast: the vector loops over one row of C classes.
 *
 * The Cython kernels hold the per-row logic (labels, weights, the loss) and
 * call these for every loop over the classes.  Each is written once in
 * _xf_rows_impl.h and instantiated here for float (_f32) and double (_f64).
 * Sums are accumulated in double.  Every loop is `omp simd`, so an output may
 * be the input itself (same index read, then written; nothing else aliases).
 */
#ifndef XF_ROWS_H
#define XF_ROWS_H

#include <math.h>
#include <stddef.h>
#include "_xf_simd.h"

/* Rows per tile in the small-C kernels. */
#define XF_LANES 16

#define XF_T float
#define XF_NAME(f) f##_f32
#define XF_EXP xf_expf
#define XF_LOG1P xf_log1pf
#include "_xf_rows_impl.h"
#undef XF_T
#undef XF_NAME
#undef XF_EXP
#undef XF_LOG1P

#define XF_T double
#define XF_NAME(f) f##_f64
#define XF_EXP xf_exp
#define XF_LOG1P xf_log1p
#include "_xf_rows_impl.h"
#undef XF_T
#undef XF_NAME
#undef XF_EXP
#undef XF_LOG1P

#endif
