# Fused-type front end to the C row primitives in _xf_rows.h.
#
# Each wrapper picks the float or double instantiation at compile time, so
# kernels written over `floating` call one name.  See _xf_rows_impl.h for
# what each primitive computes.
from cython cimport floating

cdef extern from "_xf_rows.h" nogil:
    enum: XF_LANES
    enum: XF_TILE_CAPACITY
    Py_ssize_t xf_tile_limit_f32()
    Py_ssize_t xf_tile_limit_f64()
    Py_ssize_t xf_label_tile_limit_f32()
    Py_ssize_t xf_label_tile_limit_f64()
    void xf_tile_load_f32(const float *x, Py_ssize_t c, Py_ssize_t nr, float *tile, float *m)
    void xf_tile_load_f64(const double *x, Py_ssize_t c, Py_ssize_t nr, double *tile,
                          double *m)
    void xf_tile_exp_f32(const float *tile, Py_ssize_t c, const float *m, float *out,
                         float *others, float *l1p)
    void xf_tile_exp_f64(const double *tile, Py_ssize_t c, const double *m, double *out,
                         double *others, double *l1p)
    void xf_tile_store_f32(const float *tile, Py_ssize_t c, Py_ssize_t nr, const float *a,
                           const float *s, const float *b, const float *w, float *g)
    void xf_tile_store_f64(const double *tile, Py_ssize_t c, Py_ssize_t nr, const double *a,
                           const double *s, const double *b, const double *w, double *g)
    void xf_tile_cross_entropy_f32(const float *m, const float *others, const float *l1p,
                                   const double *x_y, const double *e_y, const double *w_y,
                                   const double *s, double z_loss, double grad_scale,
                                   double *loss, float *a, double *g_y)
    void xf_tile_cross_entropy_f64(const double *m, const double *others, const double *l1p,
                                   const double *x_y, const double *e_y, const double *w_y,
                                   const double *s, double z_loss, double grad_scale,
                                   double *loss, double *a, double *g_y)
    float xf_row_max_f32(const float *x, Py_ssize_t n)
    double xf_row_max_f64(const double *x, Py_ssize_t n)
    void xf_rows_max_f32(const float *x, Py_ssize_t n, Py_ssize_t rows, float *m)
    void xf_rows_max_f64(const double *x, Py_ssize_t n, Py_ssize_t rows, double *m)
    double xf_row_exp_sum_f32(const float *x, Py_ssize_t n, float m, float *e, double *l1p)
    double xf_row_exp_sum_f64(const double *x, Py_ssize_t n, double m, double *e,
                              double *l1p)
    void xf_rows_exp_sum_f32(const float *x, Py_ssize_t n, Py_ssize_t rows, const float *m,
                             float *e, double *others)
    void xf_rows_exp_sum_f64(const double *x, Py_ssize_t n, Py_ssize_t rows, const double *m,
                             double *e, double *others)
    void xf_rows_log1p_f64(const double *x, Py_ssize_t n, double *out)
    double xf_row_target_dot_f32(const float *x, Py_ssize_t n, float shift,
                                 const float *t, const float *w,
                                 float t_scale, float t_add, double *c_sum)
    double xf_row_target_dot_f64(const double *x, Py_ssize_t n, double shift,
                                 const double *t, const double *w,
                                 double t_scale, double t_add, double *c_sum)
    void xf_row_scale_sub_f32(float *g, Py_ssize_t n, float a, float b,
                              const float *t, const float *w,
                              float t_scale, float t_add)
    void xf_row_scale_sub_f64(double *g, Py_ssize_t n, double a, double b,
                              const double *t, const double *w,
                              double t_scale, double t_add)
    void xf_row_sub_f32(const float *x, Py_ssize_t n, float shift1, float shift2, float *out)
    void xf_row_sub_f64(const double *x, Py_ssize_t n, double shift1, double shift2,
                        double *out)
    void xf_row_softcap_f32(const float *x, Py_ssize_t n, float cap, float *out,
                            float *slope)
    void xf_row_softcap_f64(const double *x, Py_ssize_t n, double cap, double *out,
                            double *slope)
    void xf_row_mul_f32(float *g, Py_ssize_t n, const float *slope)
    void xf_row_mul_f64(double *g, Py_ssize_t n, const double *slope)


# Rows of at most this many classes are handled in groups of XF_LANES rows:
# their log1p's (and the per-row call overheads) are then paid once a group.
cdef enum:
    ROW_GROUP_MAX_CLASSES = 256


cdef inline Py_ssize_t row_group(Py_ssize_t c) noexcept nogil:
    """Rows a kernel's row path takes together: XF_LANES short rows (their
    log1p's then go in vectors), else one."""
    return XF_LANES if c <= ROW_GROUP_MAX_CLASSES else 1


cdef inline void rows_log1p(const double *x, Py_ssize_t n, double *out) noexcept nogil:
    """out[k] = log1p(x[k]), vectorised across k."""
    xf_rows_log1p_f64(x, n, out)


cdef inline floating row_max(const floating *x, Py_ssize_t n) noexcept nogil:
    if floating is float:
        return xf_row_max_f32(x, n)
    else:
        return xf_row_max_f64(x, n)


cdef inline void rows_max(const floating *x, Py_ssize_t n, Py_ssize_t rows,
                          floating *m) noexcept nogil:
    """row_max of `rows` consecutive rows of n classes."""
    if floating is float:
        xf_rows_max_f32(x, n, rows, m)
    else:
        xf_rows_max_f64(x, n, rows, m)


cdef inline double row_exp_sum(const floating *x, Py_ssize_t n, floating m,
                               floating *e, double *l1p) noexcept nogil:
    if floating is float:
        return xf_row_exp_sum_f32(x, n, m, e, l1p)
    else:
        return xf_row_exp_sum_f64(x, n, m, e, l1p)


cdef inline void rows_exp_sum(const floating *x, Py_ssize_t n, Py_ssize_t rows,
                              const floating *m, floating *e, double *others) noexcept nogil:
    """row_exp_sum (no log1p) of `rows` consecutive rows of n classes, their
    exps to the rows of e (which may be x)."""
    if floating is float:
        xf_rows_exp_sum_f32(x, n, rows, m, e, others)
    else:
        xf_rows_exp_sum_f64(x, n, rows, m, e, others)


cdef inline double row_target_dot(const floating *x, Py_ssize_t n, floating shift,
                                  const floating *t, const floating *w,
                                  floating t_scale, floating t_add,
                                  double *c_sum) noexcept nogil:
    if floating is float:
        return xf_row_target_dot_f32(x, n, shift, t, w, t_scale, t_add, c_sum)
    else:
        return xf_row_target_dot_f64(x, n, shift, t, w, t_scale, t_add, c_sum)


cdef inline void row_scale_sub(floating *g, Py_ssize_t n, floating a, floating b,
                               const floating *t, const floating *w,
                               floating t_scale, floating t_add) noexcept nogil:
    if floating is float:
        xf_row_scale_sub_f32(g, n, a, b, t, w, t_scale, t_add)
    else:
        xf_row_scale_sub_f64(g, n, a, b, t, w, t_scale, t_add)


cdef inline void row_sub(const floating *x, Py_ssize_t n, floating shift1,
                         floating shift2, floating *out) noexcept nogil:
    if floating is float:
        xf_row_sub_f32(x, n, shift1, shift2, out)
    else:
        xf_row_sub_f64(x, n, shift1, shift2, out)


cdef inline void row_softcap(const floating *x, Py_ssize_t n, floating cap,
                             floating *out, floating *slope) noexcept nogil:
    if floating is float:
        xf_row_softcap_f32(x, n, cap, out, slope)
    else:
        xf_row_softcap_f64(x, n, cap, out, slope)


cdef inline void row_mul(floating *g, Py_ssize_t n, const floating *slope) noexcept nogil:
    if floating is float:
        xf_row_mul_f32(g, n, slope)
    else:
        xf_row_mul_f64(g, n, slope)


# Tiles: XF_LANES rows with few classes, transposed so loops run across rows.
# A kernel takes this path when C <= tile_limit() (its `labels` limit for the
# label losses): below that the row loops' remainders and reductions cost more
# than the tile's transposes.  The limits are measured per instruction-set
# level and dtype, and set in _xf_rows.h; XF_TILE_CAPACITY bounds them (it
# sizes the tiles).
cdef enum:
    TILE_SIZE = XF_LANES * XF_TILE_CAPACITY


cdef inline Py_ssize_t tile_limit(floating dtype_tag, bint labels=False) noexcept nogil:
    """Most classes a tile takes, for the dtype of `dtype_tag`: the softmax
    family's limit, or with `labels` the label losses'."""
    if floating is float:
        return xf_label_tile_limit_f32() if labels else xf_tile_limit_f32()
    else:
        return xf_label_tile_limit_f64() if labels else xf_tile_limit_f64()


cdef inline void tile_load(const floating *x, Py_ssize_t c, Py_ssize_t nr,
                           floating *tile, floating *m) noexcept nogil:
    """The tile of rows [0, nr) of x, and each lane's max in m."""
    if floating is float:
        xf_tile_load_f32(x, c, nr, tile, m)
    else:
        xf_tile_load_f64(x, c, nr, tile, m)


cdef inline void tile_exp(const floating *tile, Py_ssize_t c, const floating *m,
                          floating *out, floating *others, floating *l1p) noexcept nogil:
    if floating is float:
        xf_tile_exp_f32(tile, c, m, out, others, l1p)
    else:
        xf_tile_exp_f64(tile, c, m, out, others, l1p)


cdef inline void tile_store(const floating *tile, Py_ssize_t c, Py_ssize_t nr,
                            const floating *a, const floating *s, const floating *b,
                            const floating *w, floating *g) noexcept nogil:
    if floating is float:
        xf_tile_store_f32(tile, c, nr, a, s, b, w, g)
    else:
        xf_tile_store_f64(tile, c, nr, a, s, b, w, g)


cdef inline void tile_cross_entropy(const floating *m, const floating *others,
                                    const floating *l1p, const double *x_y,
                                    const double *e_y, const double *w_y, const double *s,
                                    double z_loss, double grad_scale, double *loss,
                                    floating *a, double *g_y) noexcept nogil:
    if floating is float:
        xf_tile_cross_entropy_f32(m, others, l1p, x_y, e_y, w_y, s, z_loss, grad_scale,
                                  loss, a, g_y)
    else:
        xf_tile_cross_entropy_f64(m, others, l1p, x_y, e_y, w_y, s, z_loss, grad_scale,
                                  loss, a, g_y)
