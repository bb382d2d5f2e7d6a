/* Instruction-set levels of the kernels, and the choice among them.
 *
 * Every C kernel is compiled once per level of the build's architecture
 * (_xf_levels.h instantiates it with each level's target attribute and name
 * suffix); a call goes to the instance of the level chosen when the module
 * is loaded: the best one the CPU supports, capped by the environment
 * variable XENTFAST_SIMD.  The choice is a plain int, so it can be capped
 * (gcc's target_clones/ifunc could not) and reported.
 *
 * Levels, lowest first (the index is the level's number):
 *   x86-64:   baseline (SSE2), avx2 (AVX2 + FMA + BMI2, ~ x86-64-v3),
 *             avx512 (F/BW/DQ/VL/CD + the above, ~ x86-64-v4)
 *   aarch64:  neon (the architecture's baseline)
 *   other:    baseline
 * "baseline" names the lowest level on every architecture.
 *
 * Each extension module that includes this header makes the same choice in
 * its own copy of xf_level, from a constructor run when the module is loaded
 * (at `import xentfast`): the environment and the CPU are the same for all.
 */
#ifndef XF_DISPATCH_H
#define XF_DISPATCH_H

#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__)
#  define XF_X86 1
#  define XF_N_LEVELS 3
#  define XF_LEVEL_NAMES {"baseline", "avx2", "avx512"}
#  define XF_TARGET_L1 __attribute__((target("avx2,fma,bmi,bmi2,f16c")))
#  define XF_TARGET_L2 __attribute__((target( \
        "avx512f,avx512bw,avx512dq,avx512vl,avx512cd,avx2,fma,bmi,bmi2,f16c")))
#elif defined(__aarch64__)
#  define XF_N_LEVELS 1
#  define XF_LEVEL_NAMES {"neon"}
#else
#  define XF_N_LEVELS 1
#  define XF_LEVEL_NAMES {"baseline"}
#endif

/* What XENTFAST_SIMD asked for. */
enum { XF_ENV_UNSET = 0, XF_ENV_OK = 1, XF_ENV_UNKNOWN = 2, XF_ENV_UNAVAILABLE = 3 };

static const char *const xf_level_names[XF_N_LEVELS] = XF_LEVEL_NAMES;
static int xf_level = 0;          /* the level calls go to */
static int xf_best_level = 0;     /* the best level this CPU supports */
static int xf_env_status = XF_ENV_UNSET;

/* Can this CPU (and OS) run level `level`? */
static int xf_cpu_has_level(int level)
{
#ifdef XF_X86
    __builtin_cpu_init();
    if (level >= 1 && !(__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")
                        && __builtin_cpu_supports("bmi") && __builtin_cpu_supports("bmi2")))
        return 0;
    if (level >= 2 && !(__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw")
                        && __builtin_cpu_supports("avx512dq")
                        && __builtin_cpu_supports("avx512vl")
                        && __builtin_cpu_supports("avx512cd")))
        return 0;
#endif
    return level < XF_N_LEVELS;
}

/* The level named `name`, or -1. */
static int xf_level_by_name(const char *name)
{
    if (strcmp(name, "baseline") == 0)
        return 0;
    for (int level = 0; level < XF_N_LEVELS; level++)
        if (strcmp(name, xf_level_names[level]) == 0)
            return level;
    return -1;
}

static void xf_choose_level(const char *env)
{
    int best = 0;
    while (best + 1 < XF_N_LEVELS && xf_cpu_has_level(best + 1))
        best++;
    xf_best_level = best;
    xf_level = best;
    xf_env_status = XF_ENV_UNSET;
    if (env == NULL || env[0] == '\0')
        return;
    int cap = xf_level_by_name(env);
    if (cap < 0) {
        xf_env_status = XF_ENV_UNKNOWN;
        return;
    }
    xf_env_status = cap > best ? XF_ENV_UNAVAILABLE : XF_ENV_OK;
    xf_level = cap < best ? cap : best;
}

__attribute__((constructor)) static void xf_choose_level_at_load(void)
{
    xf_choose_level(getenv("XENTFAST_SIMD"));
}

/* XF_DISPATCH(f, args...) calls f's instance at the chosen level.  A kernel
 * header turns each of its extern names into this, e.g.
 *   #define xf_row_max_f32(...) XF_DISPATCH(xf_row_max_f32, __VA_ARGS__)
 * (a macro does not expand itself, so the pasted names are the instances). */
#if XF_N_LEVELS == 3
#  define XF_DISPATCH(f, ...) \
    (xf_level == 2 ? f##_l2(__VA_ARGS__) : xf_level == 1 ? f##_l1(__VA_ARGS__) \
                                                         : f##_l0(__VA_ARGS__))
#else
#  define XF_DISPATCH(f, ...) f##_l0(__VA_ARGS__)
#endif

/* A per-level setting: XF_PER_LEVEL(a, b, c) is a at level 0, b at 1, c at
 * 2 (architectures with one level use a). */
#define XF_PER_LEVEL(l0, l1, l2) \
    (xf_level == 0 ? (l0) : xf_level == 1 ? (l1) : (l2))

#endif
