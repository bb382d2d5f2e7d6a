# Fused-type front end to the C elementwise kernels in _xf_elementwise.h
# (see _xf_elementwise_impl.h for what each computes): each wrapper picks the
# float or double instantiation at compile time.
from cython cimport floating
from libc.stdint cimport int64_t

cdef extern from "_xf_elementwise.h" nogil:
    enum:
        XF_BLOCK
    Py_ssize_t xf_count_bad_labels(const int64_t *labels, Py_ssize_t n, int64_t n_classes,
                                   int64_t ignore_index, Py_ssize_t *ignored)
    Py_ssize_t xf_count_outside_unit_f32(const float *v, Py_ssize_t n)
    Py_ssize_t xf_count_outside_unit_f64(const double *v, Py_ssize_t n)
    const float *xf_broadcast_block_f32(const float *data, Py_ssize_t inner,
                                        Py_ssize_t period, Py_ssize_t k0,
                                        Py_ssize_t n, float *buf)
    const double *xf_broadcast_block_f64(const double *data, Py_ssize_t inner,
                                         Py_ssize_t period, Py_ssize_t k0,
                                         Py_ssize_t n, double *buf)
    double xf_bce_block_f32(const float *p, const float *t, const float *w,
                            Py_ssize_t n, float scale, float *loss, float *grad)
    double xf_bce_block_f64(const double *p, const double *t, const double *w,
                            Py_ssize_t n, double scale, double *loss, double *grad)
    double xf_bce_logits_block_f32(const float *x, const float *t, const float *w,
                                   const float *pw, Py_ssize_t n, float scale,
                                   float *loss, float *grad)
    double xf_bce_logits_block_f64(const double *x, const double *t, const double *w,
                                   const double *pw, Py_ssize_t n, double scale,
                                   double *loss, double *grad)
    double xf_sigmoid_focal_block_f32(const float *x, const float *t, Py_ssize_t n,
                                      float alpha, float gamma, float scale,
                                      float *loss, float *grad)
    double xf_sigmoid_focal_block_f64(const double *x, const double *t, Py_ssize_t n,
                                      double alpha, double gamma, double scale,
                                      double *loss, double *grad)


cdef inline const floating *broadcast_block(const floating *data, Py_ssize_t inner,
                                            Py_ssize_t period, Py_ssize_t k0, Py_ssize_t n,
                                            floating *buf) noexcept nogil:
    if floating is float:
        return xf_broadcast_block_f32(data, inner, period, k0, n, buf)
    else:
        return xf_broadcast_block_f64(data, inner, period, k0, n, buf)


cdef inline double bce_block(const floating *p, const floating *t, const floating *w,
                             Py_ssize_t n, double scale, floating *loss,
                             floating *grad) noexcept nogil:
    if floating is float:
        return xf_bce_block_f32(p, t, w, n, <float>scale, loss, grad)
    else:
        return xf_bce_block_f64(p, t, w, n, scale, loss, grad)


cdef inline double bce_logits_block(const floating *x, const floating *t,
                                    const floating *w, const floating *pw, Py_ssize_t n,
                                    double scale, floating *loss,
                                    floating *grad) noexcept nogil:
    if floating is float:
        return xf_bce_logits_block_f32(x, t, w, pw, n, <float>scale, loss, grad)
    else:
        return xf_bce_logits_block_f64(x, t, w, pw, n, scale, loss, grad)


cdef inline double sigmoid_focal_block(const floating *x, const floating *t, Py_ssize_t n,
                                       double alpha, double gamma, double scale,
                                       floating *loss, floating *grad) noexcept nogil:
    if floating is float:
        return xf_sigmoid_focal_block_f32(x, t, n, <float>alpha, <float>gamma,
                                          <float>scale, loss, grad)
    else:
        return xf_sigmoid_focal_block_f64(x, t, n, alpha, gamma, scale, loss, grad)


cdef inline Py_ssize_t count_outside_unit(const floating *v, Py_ssize_t n) noexcept nogil:
    if floating is float:
        return xf_count_outside_unit_f32(v, n)
    else:
        return xf_count_outside_unit_f64(v, n)
