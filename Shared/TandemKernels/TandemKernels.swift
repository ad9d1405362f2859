// TandemKernels module.
