/* test_runtime.c — runtime/runtime.c's gradc_layout, the entry checks and
 * buffer offsets of every generated function with symbolic dimensions:
 * sizes rounded up to 64 bytes, classes laid out in order, and -1 for a
 * negative dimension, an overflowing product or more than 2^60 bytes. */
#include "check.h"

#include <gradc/runtime.h>
#include <stdint.h>

static void layout_sizes(void)
{
    /* d = {3, 5, 1}: a shape 3x5, classes 2 x (3x5) and 1 x (3x1 + 3) */
    const int64_t d[] = {3, 5, 1};
    const int32_t tab[] = {3, 1, 2, 0, 1, 0, 1, 0, 2, 0, 2, 1, 1};
    int64_t cls[4] = {0};
    CHECK(gradc_layout(d, tab, cls) == 2 * 128 + 64);
    CHECK(cls[0] == 128 && cls[1] == 0);     /* 15 doubles: 120 bytes, 128 aligned */
    CHECK(cls[2] == 64 && cls[3] == 256);    /* 6 doubles: 48 bytes */
    CHECK(gradc_layout(d, tab, NULL) == 320);
    const int32_t none[] = {0, 0, 0};
    CHECK(gradc_layout(d, none, NULL) == 0);
    const int64_t z[] = {0, 7};              /* an empty class still has its count */
    const int32_t empty[] = {2, 0, 1, 0, 1, 0, 3};
    CHECK(gradc_layout(z, empty, cls) == 0 && cls[0] == 0 && cls[1] == 0);
}

static void layout_errors(void)
{
    const int32_t tab[] = {2, 1, 1, 0, 1, 0, 1, 0, 1};
    CHECK(gradc_layout((const int64_t[]){-1, 5}, tab, NULL) == -1);
    CHECK(gradc_layout((const int64_t[]){5, INT64_MIN}, tab, NULL) == -1);
    /* a shape's bytes times 2 must fit 64 bits: 2^30 x 2^29 x 16 does, 2^30 x 2^30 x 16 not */
    const int32_t shape[] = {2, 1, 0, 0, 1};
    CHECK(gradc_layout((const int64_t[]){INT64_C(1) << 30, INT64_C(1) << 29}, shape, NULL) == 0);
    CHECK(gradc_layout((const int64_t[]){INT64_C(1) << 30, INT64_C(1) << 30}, shape, NULL) == -1);
    CHECK(gradc_layout((const int64_t[]){INT64_C(1) << 40, INT64_C(1) << 40}, shape, NULL) == -1);
    /* 2^57 doubles are 2^60 bytes, the most; twice that, or one more, not */
    const int32_t big[] = {2, 0, 1, 0, 1, 0, 1}, two[] = {2, 0, 1, 0, 1, 0, 2};
    const int64_t d[] = {INT64_C(1) << 30, INT64_C(1) << 27};
    CHECK(gradc_layout(d, big, NULL) == INT64_C(1) << 60);
    CHECK(gradc_layout(d, two, NULL) == -1);
    const int32_t plus[] = {2, 0, 1, 0, 1, 1, 1};   /* + d[0] doubles */
    CHECK(gradc_layout(d, plus, NULL) == -1);
    /* a count that overflows the total */
    const int32_t many[] = {2, 0, 1, 0, 1, 0, INT32_MAX};
    CHECK(gradc_layout((const int64_t[]){INT64_C(1) << 20, INT64_C(1) << 20}, many, NULL) == -1);
}

int main(void)
{
    layout_sizes();
    layout_errors();
    return check_report("test_runtime");
}
