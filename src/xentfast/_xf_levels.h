/* Instantiates the kernel file XF_IMPL once per instruction-set level (no
 * include guard: included once per dtype).
 *
 * The includer defines XF_IMPL (the file name) and XF_DT_NAME(f) (f with the
 * dtype suffix, e.g. f##_f32); here XF_NAME(f) appends the level suffix
 * (_l0, _l1, ...), XF_TARGET is the level's target attribute, and
 * XF_LEVEL_NUM its number, for code that differs by level (intrinsics).
 */
#include "_xf_dispatch.h"

/* Every module includes every primitive but calls only some of them. */
#if defined(__GNUC__)
#  define XF_MAYBE_UNUSED __attribute__((unused))
#else
#  define XF_MAYBE_UNUSED
#endif

#define XF_PASTE2(a, b) a##b
#define XF_PASTE(a, b) XF_PASTE2(a, b)

#define XF_NAME(f) XF_PASTE(XF_DT_NAME(f), _l0)
#define XF_TARGET XF_MAYBE_UNUSED
#define XF_LEVEL_NUM 0
#include XF_IMPL
#undef XF_NAME
#undef XF_TARGET
#undef XF_LEVEL_NUM

#if XF_N_LEVELS >= 3
#define XF_NAME(f) XF_PASTE(XF_DT_NAME(f), _l1)
#define XF_TARGET XF_MAYBE_UNUSED XF_TARGET_L1
#define XF_LEVEL_NUM 1
#include XF_IMPL
#undef XF_NAME
#undef XF_TARGET
#undef XF_LEVEL_NUM

#define XF_NAME(f) XF_PASTE(XF_DT_NAME(f), _l2)
#define XF_TARGET XF_MAYBE_UNUSED XF_TARGET_L2
#define XF_LEVEL_NUM 2
#include XF_IMPL
#undef XF_NAME
#undef XF_TARGET
#undef XF_LEVEL_NUM
#endif
