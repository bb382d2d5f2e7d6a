/* Elementwise kernels of the binary and multi-label losses of xentfast.
 *
 * Each kernel handles one block of a flattened input: it computes every
 * element's loss and gradient in one vector loop (`omp simd`, multi-versioned
 * like the row primitives) and returns the block's loss sum in double.  The
 * Cython layer (_binary.pyx) runs the blocks in parallel; binary.py validates
 * and reduces.  Written once in _xf_elementwise_impl.h and instantiated here
 * for float (_f32) and double (_f64) at every instruction-set level, like the
 * row primitives (_xf_rows.h).
 */
#ifndef XF_ELEMENTWISE_H
#define XF_ELEMENTWISE_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include "_xf_simd.h"
#include "_xf_dispatch.h"
#include "_xf_exp_x86.h"

/* Elements per block: the unit of parallel work and of the partial sums, so
 * the sums (and hence the results) do not depend on the number of threads. */
#define XF_BLOCK 4096
#define XF_IMPL "_xf_elementwise_impl.h"
/* Elements per chunk of a block: a chunk's arrays and temporaries fit in L1. */
#define XF_CHUNK 512

#define XF_T float
#define XF_F32 1
#define XF_DT_NAME(f) f##_f32
#define XF_EXP xf_expf
#define XF_LOG xf_logf
#define XF_LOG_PLUS_FROM_1 xf_logf_plus_from_1
#define XF_LOG1P xf_log1pf
#include "_xf_levels.h"
#undef XF_T
#undef XF_DT_NAME
#undef XF_EXP
#undef XF_LOG
#undef XF_LOG_PLUS_FROM_1
#undef XF_LOG1P
#undef XF_F32

#define XF_T double
#define XF_F32 0
#define XF_DT_NAME(f) f##_f64
#define XF_EXP xf_exp
#define XF_LOG xf_log
#define XF_LOG_PLUS_FROM_1 xf_log_plus_from_1
#define XF_LOG1P xf_log1p
#include "_xf_levels.h"
#undef XF_T
#undef XF_DT_NAME
#undef XF_EXP
#undef XF_LOG
#undef XF_LOG_PLUS_FROM_1
#undef XF_LOG1P
#undef XF_F32
#undef XF_IMPL

#define xf_count_bad_labels(...) XF_DISPATCH(xf_count_bad_labels_f32, __VA_ARGS__)
#define xf_count_outside_unit_f32(...) XF_DISPATCH(xf_count_outside_unit_f32, __VA_ARGS__)
#define xf_count_outside_unit_f64(...) XF_DISPATCH(xf_count_outside_unit_f64, __VA_ARGS__)
#define xf_broadcast_block_f32(...) XF_DISPATCH(xf_broadcast_block_f32, __VA_ARGS__)
#define xf_broadcast_block_f64(...) XF_DISPATCH(xf_broadcast_block_f64, __VA_ARGS__)
#define xf_bce_block_f32(...) XF_DISPATCH(xf_bce_block_f32, __VA_ARGS__)
#define xf_bce_block_f64(...) XF_DISPATCH(xf_bce_block_f64, __VA_ARGS__)
#define xf_bce_logits_block_f32(...) XF_DISPATCH(xf_bce_logits_block_f32, __VA_ARGS__)
#define xf_bce_logits_block_f64(...) XF_DISPATCH(xf_bce_logits_block_f64, __VA_ARGS__)
#define xf_sigmoid_focal_block_f32(...) XF_DISPATCH(xf_sigmoid_focal_block_f32, __VA_ARGS__)
#define xf_sigmoid_focal_block_f64(...) XF_DISPATCH(xf_sigmoid_focal_block_f64, __VA_ARGS__)

#endif
