/**
 * Runs the real cuda/*.cu kernels on the CPU (tests/cuda_emu/emu.h) behind a KernelLauncher, so
 * the kernel wrappers, the parameter packing and the kernels themselves can be compared with the
 * CPU backend on machines without a GPU. Built with g++ on first use and cached in /tmp by a hash
 * of its sources.
 * @module
 */

import type { Buffer, View } from "../../src/backend/backend.ts";
import type { DType } from "../../src/dtype.ts";
import type { KernelArg, KernelLauncher } from "../../src/backend/cuda/launcher.ts";
import { packParams, paramPointers } from "../../src/backend/cuda/kernel_params.ts";
import { PTX_MODULES } from "../../src/backend/cuda/_ptx.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
const EMU_DIR = `${ROOT}tests/cuda_emu`;
const CUDA_DIR = `${ROOT}cuda`;

/** Why the emulator cannot be built here, or null when it can (g++ with C++20 is needed). */
export async function emulatorUnavailable(): Promise<string | null> {
  try {
    const out = await new Deno.Command("g++", { args: ["--version"], stdout: "null" }).output();
    return out.success ? null : "g++ --version failed";
  } catch {
    return "g++ not found (the CUDA emulator tests need a C++20 compiler)";
  }
}

async function sha256(text: string): Promise<string> {
  const d = new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text)));
  return Array.from(d.slice(0, 12), (b) => b.toString(16).padStart(2, "0")).join("");
}

async function gxx(args: string[]): Promise<void> {
  const out = await new Deno.Command("g++", { args, stderr: "piped" }).output();
  if (!out.success) {
    throw new Error(`g++ ${args.join(" ")}:\n${new TextDecoder().decode(out.stderr)}`);
  }
}

/** Builds (or reuses) the emulator library; returns its path. */
async function build(): Promise<string> {
  const files: string[] = [];
  for (const dir of [CUDA_DIR, EMU_DIR]) {
    for await (const e of Deno.readDir(dir)) {
      if (/\.(cu|cuh|h|cpp)$/.test(e.name)) files.push(`${dir}/${e.name}`);
    }
  }
  files.sort();
  const texts = await Promise.all(files.map((f) => Deno.readTextFile(f)));
  const key = await sha256(files.map((f, i) => f + "\0" + texts[i]).join("\0"));
  const dir = `/tmp/denograd-cuda-emu-${key}`;
  const lib = `${dir}/libemu.so`;
  try {
    await Deno.stat(lib);
    return lib;
  } catch { /* not built yet */ }
  await Deno.mkdir(dir, { recursive: true });
  const flags = ["-std=c++20", "-O0", "-fPIC", "-w", `-I${CUDA_DIR}`, `-I${EMU_DIR}`];
  const units = PTX_MODULES.map((m) => {
    const entries = [...m.ptx.matchAll(/\.entry\s+(\w+)/g)].map((e) => `EMU_REGISTER(${e[1]})`);
    return {
      src: `${dir}/${m.name}.cpp`,
      text: `#include "emu.h"\n#include "registry.h"\n#include "${m.name}.cu"\n${
        entries.join("\n")
      }\n`,
    };
  });
  for (const u of units) await Deno.writeTextFile(u.src, u.text);
  const sources = [`${EMU_DIR}/runtime.cpp`, ...units.map((u) => u.src)];
  const objects = sources.map((s) => `${dir}/${s.split("/").pop()}.o`);
  // Two at a time: the build machines are small.
  for (let i = 0; i < sources.length; i += 2) {
    await Promise.all(
      sources.slice(i, i + 2).map((s, j) => gxx([...flags, "-c", s, "-o", objects[i + j]])),
    );
  }
  const tmp = `${lib}.${Deno.pid}.tmp`;
  await gxx(["-shared", ...objects, "-o", tmp]);
  await Deno.rename(tmp, lib);
  return lib;
}

/** Host memory standing in for device memory. */
export class EmuBuffer implements Buffer {
  readonly bytes: number;
  readonly data: ArrayBuffer;
  readonly ptr: bigint;
  constructor(bytes: number) {
    this.bytes = bytes;
    this.data = new ArrayBuffer(Math.max(8, Math.ceil(bytes / 8) * 8));
    this.ptr = Deno.UnsafePointer.value(Deno.UnsafePointer.of(new Uint8Array(this.data)));
  }
}

const ITEM: Record<DType, number> = { f32: 4, i32: 4, bf16: 2 };

/** A KernelLauncher that runs the kernels in the emulator, synchronously. */
export class EmuDevice implements KernelLauncher {
  readonly #lib: Deno.DynamicLibrary<{
    emu_launch: {
      parameters: ["buffer", "u32", "u32", "u32", "u32", "u32", "u32", "u32", "buffer"];
      result: "i32";
    };
  }>;
  /** Scratch of the current call, kept alive until `endCall`. */
  #scratch: EmuBuffer[] = [];
  /** Kernel names launched so far. */
  readonly launched: string[] = [];

  private constructor(path: string) {
    this.#lib = Deno.dlopen(path, {
      emu_launch: {
        parameters: ["buffer", "u32", "u32", "u32", "u32", "u32", "u32", "u32", "buffer"],
        result: "i32",
      },
    });
  }

  /** Builds the emulator if needed and loads it. */
  static async open(): Promise<EmuDevice> {
    return new EmuDevice(await build());
  }

  close(): void {
    this.#lib.close();
  }

  address(view: View): bigint {
    const b = view.buffer;
    if (!(b instanceof EmuBuffer)) throw new TypeError("EmuDevice: not an emulator buffer");
    return b.ptr + BigInt(view.offset * ITEM[view.dtype]);
  }

  launch(
    name: string,
    grid: readonly [number, number, number],
    block: readonly [number, number, number],
    sharedBytes: number,
    args: readonly KernelArg[],
  ): void {
    const { data, layout } = packParams(args, name);
    const base = Deno.UnsafePointer.value(Deno.UnsafePointer.of(new Uint8Array(data)));
    const pointers = paramPointers(base, layout);
    const cname = new TextEncoder().encode(name + "\0");
    const rc = this.#lib.symbols.emu_launch(cname, ...grid, ...block, sharedBytes, pointers);
    if (rc === -1) throw new Error(`EmuDevice: no kernel named ${name}`);
    if (rc === -2) throw new Error(`EmuDevice: ${name}: threads deadlocked on a barrier`);
    if (rc !== 0) {
      throw new Error(`EmuDevice: ${name}: a barrier or shuffle after threads returned`);
    }
    this.launched.push(name);
  }

  scratch(bytes: number): bigint {
    const b = new EmuBuffer(bytes);
    this.#scratch.push(b);
    return b.ptr;
  }

  /** Releases the scratch of the finished call. */
  endCall(): void {
    this.#scratch = [];
  }
}

/** A contiguous (or given-strides) view over a new emulator buffer holding `values`. */
export function emuView(
  dtype: DType,
  shape: number[],
  values: ArrayLike<number> | Uint16Array,
  strides?: number[],
  offset = 0,
): View {
  const n = Math.max(values.length, 1);
  const buffer = new EmuBuffer((n + offset) * ITEM[dtype]);
  const arr = dtype === "f32"
    ? new Float32Array(buffer.data)
    : dtype === "i32"
    ? new Int32Array(buffer.data)
    : new Uint16Array(buffer.data);
  arr.set(values as ArrayLike<number>, offset);
  const s = strides ?? shape.map((_, d) => shape.slice(d + 1).reduce((a, b) => a * b, 1));
  return { buffer, dtype, shape, strides: s, offset };
}

/** The raw elements of a view's buffer (bf16 as bit patterns). */
export function emuArray(v: View): Float32Array | Int32Array | Uint16Array {
  const b = v.buffer as EmuBuffer;
  return v.dtype === "f32"
    ? new Float32Array(b.data)
    : v.dtype === "i32"
    ? new Int32Array(b.data)
    : new Uint16Array(b.data);
}
