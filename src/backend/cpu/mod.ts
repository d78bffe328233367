/**
 * The CPU backend: TypeScript kernels over ArrayBuffers, matmul through OpenBLAS.
 * @module
 */

export { CpuBackend, type CpuBackendOptions } from "./cpu_backend.ts";
export { CpuBuffer } from "./buffer.ts";
