/* Row primitives of xentfast: the vector loops over one row of C classes.
 *
 * The Cython kernels hold the per-row logic (labels, weights, the loss) and
 * call these for every loop over the classes.  Each is written once in
 * _xf_rows_impl.h and instantiated for float (_f32) and double (_f64) at
 * every instruction-set level (_xf_levels.h); the names the .pxd files use
 * (xf_row_max_f32, ...) call the instance of the level chosen at import
 * (_xf_dispatch.h).  Sums are accumulated in double.  Every loop is
 * `omp simd`, so an output may be the input itself (same index read, then
 * written; nothing else aliases).
 */
#ifndef XF_ROWS_H
#define XF_ROWS_H

#include <math.h>
#include <stddef.h>
#include "_xf_simd.h"
#include "_xf_dispatch.h"
#include "_xf_transpose.h"
#include "_xf_rows_x86.h"

/* Rows per tile in the small-C kernels. */
#define XF_LANES 16
/* Most classes a tile can hold (sizes the tiles; each level's limit is below). */
#define XF_TILE_CAPACITY 128

#define XF_IMPL "_xf_rows_impl.h"

#define XF_T float
#define XF_F32 1
#define XF_DT_NAME(f) f##_f32
#define XF_EXP xf_expf
#define XF_LOG1P xf_log1pf_nonneg   /* of sums of exps: >= 0 */
#include "_xf_levels.h"
#undef XF_T
#undef XF_DT_NAME
#undef XF_EXP
#undef XF_LOG1P
#undef XF_F32

#define XF_T double
#define XF_F32 0
#define XF_DT_NAME(f) f##_f64
#define XF_EXP xf_exp
#define XF_LOG1P xf_log1p_nonneg
#include "_xf_levels.h"
#undef XF_T
#undef XF_DT_NAME
#undef XF_EXP
#undef XF_LOG1P
#undef XF_F32
#undef XF_IMPL

#define xf_row_max_f32(...) XF_DISPATCH(xf_row_max_f32, __VA_ARGS__)
#define xf_row_max_f64(...) XF_DISPATCH(xf_row_max_f64, __VA_ARGS__)
#define xf_rows_max_f32(...) XF_DISPATCH(xf_rows_max_f32, __VA_ARGS__)
#define xf_rows_max_f64(...) XF_DISPATCH(xf_rows_max_f64, __VA_ARGS__)
#define xf_row_exp_sum_f32(...) XF_DISPATCH(xf_row_exp_sum_f32, __VA_ARGS__)
#define xf_row_exp_sum_f64(...) XF_DISPATCH(xf_row_exp_sum_f64, __VA_ARGS__)
#define xf_rows_exp_sum_f32(...) XF_DISPATCH(xf_rows_exp_sum_f32, __VA_ARGS__)
#define xf_rows_exp_sum_f64(...) XF_DISPATCH(xf_rows_exp_sum_f64, __VA_ARGS__)
#define xf_row_target_dot_f32(...) XF_DISPATCH(xf_row_target_dot_f32, __VA_ARGS__)
#define xf_row_target_dot_f64(...) XF_DISPATCH(xf_row_target_dot_f64, __VA_ARGS__)
#define xf_row_scale_sub_f32(...) XF_DISPATCH(xf_row_scale_sub_f32, __VA_ARGS__)
#define xf_row_scale_sub_f64(...) XF_DISPATCH(xf_row_scale_sub_f64, __VA_ARGS__)
#define xf_rows_log1p_f64(...) XF_DISPATCH(xf_rows_log1p_f64, __VA_ARGS__)
#define xf_row_sub_f32(...) XF_DISPATCH(xf_row_sub_f32, __VA_ARGS__)
#define xf_row_sub_f64(...) XF_DISPATCH(xf_row_sub_f64, __VA_ARGS__)
#define xf_row_softcap_f32(...) XF_DISPATCH(xf_row_softcap_f32, __VA_ARGS__)
#define xf_row_softcap_f64(...) XF_DISPATCH(xf_row_softcap_f64, __VA_ARGS__)
#define xf_row_mul_f32(...) XF_DISPATCH(xf_row_mul_f32, __VA_ARGS__)
#define xf_row_mul_f64(...) XF_DISPATCH(xf_row_mul_f64, __VA_ARGS__)
#define xf_exp_block_f32(...) XF_DISPATCH(xf_exp_block_f32, __VA_ARGS__)
#define xf_exp_block_f64(...) XF_DISPATCH(xf_exp_block_f64, __VA_ARGS__)
#define xf_tile_load_f32(...) XF_DISPATCH(xf_tile_load_f32, __VA_ARGS__)
#define xf_tile_load_f64(...) XF_DISPATCH(xf_tile_load_f64, __VA_ARGS__)
#define xf_tile_exp_f32(...) XF_DISPATCH(xf_tile_exp_f32, __VA_ARGS__)
#define xf_tile_exp_f64(...) XF_DISPATCH(xf_tile_exp_f64, __VA_ARGS__)
#define xf_tile_store_f32(...) XF_DISPATCH(xf_tile_store_f32, __VA_ARGS__)
#define xf_tile_store_f64(...) XF_DISPATCH(xf_tile_store_f64, __VA_ARGS__)
#define xf_tile_cross_entropy_f32(...) XF_DISPATCH(xf_tile_cross_entropy_f32, __VA_ARGS__)
#define xf_tile_cross_entropy_f64(...) XF_DISPATCH(xf_tile_cross_entropy_f64, __VA_ARGS__)

/* Most classes the kernels send through tiles, per level (baseline, avx2,
 * avx512) and dtype: above, the row loops are faster.  The float tiles of the
 * AVX levels are transposed in registers (_xf_transpose.h), so they pay off
 * for longer.  The softmax family's limits were measured on Zen 4/5 (one
 * thread; see bench/simd.md: at avx2 the float row groups win from ~44
 * classes on there).  The label losses (cross-entropy, NLL, focal) gain more
 * from tiles, whose loss algebra runs across the lanes: on a Sapphire Rapids
 * Xeon their tiles won by 20-40 % at avx2 and 13-24 % at avx512 from 44 to
 * 64 classes (one thread), where Zen 4 had them even at 64; against the row
 * groups of four rows at a time (fifth session) they still won by 7-15 % at
 * avx2 from 68 to 76 classes and lost from 88 on, and at avx512 won by
 * 12-15 % at 48-56 and were even at 64. */
static inline Py_ssize_t xf_tile_limit_f32(void) { return XF_PER_LEVEL(32, 40, 56); }
static inline Py_ssize_t xf_tile_limit_f64(void) { return XF_PER_LEVEL(24, 24, 24); }
static inline Py_ssize_t xf_label_tile_limit_f32(void) { return XF_PER_LEVEL(32, 80, 64); }
static inline Py_ssize_t xf_label_tile_limit_f64(void) { return xf_tile_limit_f64(); }

#endif
