/**
 * File formats and safe writes: safetensors (streamed, tensor by tensor) and atomic files.
 * @module
 */

export {
  AtomicFile,
  type AtomicFileOptions,
  removeStaleTemporaries,
  writeFileAtomic,
} from "./atomic.ts";
export {
  MAX_HEADER_BYTES,
  openSafetensors,
  type SafetensorsDType,
  SafetensorsError,
  SafetensorsFile,
  type SafetensorsTensorInfo,
} from "./safetensors.ts";
export { writeSafetensors, type WriteSafetensorsOptions } from "./safetensors_write.ts";
export {
  DownloadError,
  downloadFile,
  type DownloadOptions,
  type DownloadResult,
} from "./download.ts";
