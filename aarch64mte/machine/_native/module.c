/* The native hot paths are plain C functions that Unicorn calls as hooks (found with ctypes);
 * this makes the shared library an importable module, so it is located like any other. */
#include <Python.h>

static struct PyModuleDef native_module = {
    PyModuleDef_HEAD_INIT, "_native",
    "Native Unicorn hooks for aarch64mte (block counter, tag check, MTE instruction trap).",
    -1, NULL,
};

PyMODINIT_FUNC PyInit__native(void)
{
    return PyModule_Create(&native_module);
}
