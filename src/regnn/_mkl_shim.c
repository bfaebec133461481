/* The MKL vendor fix of regnn.mkl (read that module's docstring first).
 *
 * Intel MKL (linked into PyTorch's x86 wheels) asks this function whether the CPU is an
 * Intel one and, when it is not, runs its generic SSE2 "compatible" code branch whatever
 * the CPU supports. Loaded with RTLD_GLOBAL before torch, this definition is the one
 * libtorch_cpu.so's PLT binds to, so MKL chooses its branch from the CPU's instruction set
 * (cpuid) alone: AVX2 on an AVX2 + FMA AMD processor. Nothing else is defined here.
 */
int mkl_serv_intel_cpu_true(void) { return 1; }
