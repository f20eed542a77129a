// test_cxx.cpp — a generated header is usable from C++ (extern "C").
#include "quad.h"

int main()
{
    const double A[4] = {1, 0, 0, 1}, x[2] = {1, 2}, b[2] = {0, 0};
    double f = 0;
    return quad(2, A, x, b, &f, nullptr) == GRADC_OK && f == 2.5 ? 0 : 1;
}
