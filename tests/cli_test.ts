// The shared command-line parser (cli/_args.ts): unit tests of every error kind and the help, then
// every example and CLI run as a subprocess with bad flags (none of them trains anything: the
// errors come before any work).
import assert from "node:assert/strict";
import { cudaStatus } from "../mod.ts";
import {
  CliError,
  defineCli,
  oneLine,
  parseFlags,
  requireDevice,
  requireFile,
  runCli,
  usage,
  UsageError,
} from "../cli/_args.ts";

const SPEC = defineCli({
  name: "toy",
  summary: "A toy program.",
  usage: "toy [options]",
  flags: {
    steps: { type: "int", min: 1, default: 250, description: "optimizer steps" },
    shift: { type: "int", description: "any integer" },
    lr: { type: "number", above: 0, default: 5e-3, description: "learning rate" },
    "top-p": { type: "number", above: 0, max: 1, description: "nucleus threshold" },
    prompt: { type: "string", default: "I had always thought", description: "the prompt" },
    data: { type: "file", short: "d", description: "a text file", hint: "make one" },
    config: { type: "choice", choices: ["tiny", "gpt2"], default: "tiny", description: "preset" },
    resume: { type: "boolean", description: "continue" },
    device: { type: "device", description: "where to run" },
  },
});

/** The values, or the UsageError's message. */
function parse(args: string[]) {
  const r = parseFlags(SPEC, args);
  if (r.help) throw new Error("unexpected help");
  return r.values;
}

function usageError(args: string[], pattern: RegExp): void {
  assert.throws(
    () => parseFlags(SPEC, args),
    (e) => e instanceof UsageError && pattern.test(e.message),
  );
}

Deno.test("parseFlags() gives the defaults when no flag is given", () => {
  const v = parse([]);
  assert.equal(v.steps, 250);
  assert.equal(v.shift, undefined);
  assert.equal(v.lr, 5e-3);
  assert.equal(v["top-p"], undefined);
  assert.equal(v.prompt, "I had always thought");
  assert.equal(v.data, undefined);
  assert.equal(v.config, "tiny");
  assert.equal(v.resume, false);
  assert.match(v.device, /^(cpu|cuda)$/);
});

Deno.test("parseFlags() reads each type, --flag=value, short aliases and negative numbers", () => {
  const v = parse([
    "--steps",
    "1e3",
    "--shift",
    "-3",
    "--lr=0.1",
    "--top-p",
    "1",
    "--prompt",
    "Hi there",
    "-d",
    "x.txt",
    "--config",
    "gpt2",
    "--resume",
    "--device",
    "cuda:1",
  ]);
  assert.deepEqual({ ...v }, {
    steps: 1000,
    shift: -3,
    lr: 0.1,
    "top-p": 1,
    prompt: "Hi there",
    data: "x.txt",
    config: "gpt2",
    resume: true,
    device: "cuda:1",
  });
});

Deno.test("parseFlags() answers --help and -h before looking at other flags", () => {
  assert.deepEqual(parseFlags(SPEC, ["--help"]), { help: true });
  assert.deepEqual(parseFlags(SPEC, ["--bogus", "-h", "extra"]), { help: true });
});

Deno.test("parseFlags() rejects unknown flags and suggests near misses", () => {
  usageError(["--bogus"], /^unknown flag --bogus$/);
  usageError(["-x"], /^unknown flag -x$/);
  usageError(["--constructor"], /^unknown flag --constructor$/);
  usageError(["--step", "3"], /unknown flag --step \(did you mean --steps\?\)/);
  usageError(["--promt", "a"], /did you mean --prompt\?/);
});

Deno.test("parseFlags() rejects positional arguments", () => {
  usageError(["extra"], /^unexpected argument "extra" \(toy takes no positional arguments/);
  usageError(["--steps", "3", "4"], /unexpected argument "4"/);
  usageError(["--", "--steps"], /unexpected argument "--steps"/);
});

Deno.test("parseFlags() rejects a flag without its value", () => {
  usageError(["--steps"], /^--steps needs a value \(N\)$/);
  usageError(["--data", "--steps", "3"], /^--data needs a value \(FILE\)$/);
  usageError(["--prompt", "-weird"], /write --prompt=-weird/);
  assert.equal(parse(["--prompt=-weird"]).prompt, "-weird");
});

Deno.test("parseFlags() rejects values that are not integers", () => {
  for (const text of ["1.5", "abc", "", " ", "0x10", "1_000", "Infinity", "NaN", "2e-1"]) {
    usageError(["--steps", text], /^--steps must be an integer >= 1, got "/);
  }
});

Deno.test("parseFlags() rejects integers out of bounds or beyond 2^53", () => {
  usageError(["--steps", "-1"], /^--steps must be an integer >= 1, got "-1"$/);
  usageError(["--steps", "0"], /^--steps must be an integer >= 1, got "0"$/);
  usageError(["--steps", "1e300"], /^--steps must be an integer >= 1 and <= 9007199254740991/);
  usageError(["--shift", "9007199254740992"], /^--shift must be an integer <= 9007199254740991/);
  assert.equal(parse(["--shift", "9007199254740991"]).shift, Number.MAX_SAFE_INTEGER);
});

Deno.test("parseFlags() rejects numbers that are not finite or out of bounds", () => {
  for (const text of ["Infinity", "-Infinity", "NaN", "1e400", "abc", "", "1,5"]) {
    usageError(["--lr", text], /^--lr must be a finite number > 0, got "/);
  }
  usageError(["--lr", "0"], /^--lr must be a finite number > 0, got "0"$/);
  usageError(["--lr", "-1e-3"], /^--lr must be a finite number > 0/);
  usageError(["--top-p", "1.5"], /^--top-p must be a finite number > 0 and <= 1, got "1.5"$/);
});

Deno.test("parseFlags() rejects choices, booleans with values and bad device names", () => {
  usageError(["--config", "big"], /^--config must be one of tiny, gpt2, got "big"$/);
  usageError(["--resume=yes"], /^--resume takes no value$/);
  usageError(["--device", "tpu"], /^--device must be cpu, cuda or cuda:N, got "tpu"$/);
  usageError(["--device", "cuda:x"], /^--device must be cpu, cuda or cuda:N/);
});

Deno.test("parseFlags() checks required flags and declared positionals", () => {
  const spec = defineCli({
    name: "download",
    summary: "Fetch a model.",
    flags: { out: { type: "string", required: true, description: "where" } },
    positionals: [{ name: "model", description: "which model", choices: ["gpt2", "gpt2-xl"] }],
  });
  const ok = parseFlags(spec, ["gpt2", "--out", "m"]);
  assert.ok(!ok.help);
  const model: "gpt2" | "gpt2-xl" = ok.values.model, out: string = ok.values.out;
  assert.deepEqual([model, out], ["gpt2", "m"]);
  const fails = (args: string[], pattern: RegExp) =>
    assert.throws(
      () => parseFlags(spec, args),
      (e) => e instanceof UsageError && pattern.test(e.message),
    );
  fails(["gpt2"], /^--out is required$/);
  fails(["--out", "m"], /^missing <model>$/);
  fails(["gpt3", "--out", "m"], /^<model> must be one of gpt2, gpt2-xl, got "gpt3"$/);
  fails(["gpt2", "gpt2", "--out", "m"], /^unexpected argument "gpt2" \(download takes <model>\)$/);
});

Deno.test("defineCli() rejects a malformed spec", () => {
  const flag = { type: "boolean", description: "x" } as const;
  assert.throws(() => defineCli({ name: "a", summary: "", flags: { help: flag } }), TypeError);
  assert.throws(
    () => defineCli({ name: "a", summary: "", flags: { x: { ...flag, short: "h" } } }),
    TypeError,
  );
  assert.throws(() =>
    defineCli({
      name: "a",
      summary: "",
      flags: { c: { type: "choice", choices: ["a"], default: "b", description: "" } },
    }), TypeError);
});

Deno.test("usage() lists every flag with its placeholder, choices and default", () => {
  const text = usage(SPEC);
  assert.match(text, /^A toy program\.\n\nUsage: toy \[options\]\n\n/);
  assert.match(text, /\n {6}--steps N +optimizer steps \(default: 250\)\n/);
  assert.match(text, /--lr X +learning rate \(default: 5e-3\)/);
  assert.match(text, /--prompt TEXT +the prompt \(default: "I had always thought"\)/);
  assert.match(text, /-d, --data FILE +a text file\n/);
  assert.match(text, /--config NAME +preset: tiny \| gpt2 \(default: tiny\)/);
  assert.match(text, /--resume +continue\n/);
  assert.match(text, /--device NAME +where to run \(default: cuda when available\)/);
  assert.match(text, /-h, --help +show this help$/);
});

/** runCli with its output captured. */
async function capture(args: string[], main: () => void | Promise<void> = () => {}) {
  const out: string[] = [], err: string[] = [];
  const code = await runCli(SPEC, args, main, {
    out: (s) => out.push(s),
    err: (s) => err.push(s),
  });
  return { code, out: out.join("\n"), err: err.join("\n") };
}

Deno.test("runCli() prints the help to out and returns 0 without running main", async () => {
  let ran = false;
  const r = await capture(["-h"], () => {
    ran = true;
  });
  assert.deepEqual([r.code, ran, r.err], [0, false, ""]);
  assert.equal(r.out, usage(SPEC));
});

Deno.test("runCli() prints the usage and one error line for a bad flag and returns 2", async () => {
  const r = await capture(["--steps", "-1"]);
  assert.equal(r.code, 2);
  assert.equal(r.out, "");
  assert.ok(r.err.startsWith(usage(SPEC)));
  assert.equal(r.err.split("\n").at(-1), `toy: error: --steps must be an integer >= 1, got "-1"`);
});

Deno.test("runCli() returns 2 with the usage for a UsageError thrown by main", async () => {
  const r = await capture([], () => {
    throw new UsageError("--top-k 9 exceeds --experts 8");
  });
  assert.equal(r.code, 2);
  assert.equal(r.err.split("\n").at(-1), "toy: error: --top-k 9 exceeds --experts 8");
});

Deno.test("runCli() prints an error from main as one line without a stack and returns 1", async () => {
  for (const e of [new RangeError("pretrain: steps must be > 0"), new CliError("bad"), "text"]) {
    const r = await capture([], () => {
      throw e;
    });
    assert.equal(r.code, 1);
    assert.equal(r.err.split("\n").length, 1);
    assert.match(r.err, /^toy: error: (pretrain: steps must be > 0|bad|text)$/);
  }
  const multi = await capture(
    [],
    () => Promise.reject(new Error("no library found. Tried:\n  a\n  b")),
  );
  assert.equal(
    multi.err,
    "toy: error: no library found (DENOGRAD_DEBUG=1 shows the full message)",
  );
});

Deno.test("runCli() prints the stack too when DENOGRAD_DEBUG=1", async () => {
  const before = Deno.env.get("DENOGRAD_DEBUG");
  Deno.env.set("DENOGRAD_DEBUG", "1");
  try {
    const r = await capture([], () => {
      throw new CliError("outer", { cause: new TypeError("inner") });
    });
    assert.equal(r.code, 1);
    assert.match(r.err, /\n\s+at /);
    assert.match(r.err, /caused by: TypeError: inner/);
    assert.match(r.err, /toy: error: outer$/);
  } finally {
    if (before === undefined) Deno.env.delete("DENOGRAD_DEBUG");
    else Deno.env.set("DENOGRAD_DEBUG", before);
  }
});

Deno.test("runCli() checks that file flags name existing files before main runs", async () => {
  let ran = false;
  const main = () => {
    ran = true;
  };
  const missing = await capture(["--data", "/nonexistent/corpus.txt"], main);
  assert.deepEqual([missing.code, ran], [1, false]);
  assert.equal(
    missing.err,
    "toy: error: --data file not found: /nonexistent/corpus.txt (make one)",
  );
  const dir = await capture(["--data", "/tmp"], main);
  assert.equal(dir.err, "toy: error: --data is a directory, not a file: /tmp");
  const file = new URL("../examples/data/the-verdict.txt", import.meta.url).pathname;
  const ok = await capture(["--data", file], main);
  assert.deepEqual([ok.code, ran], [0, true]);
});

Deno.test("requireFile() and requireDevice() throw CliErrors that say why", async () => {
  await assert.rejects(requireFile("--weights", "/nonexistent.safetensors"), CliError);
  requireDevice("--device", "cpu");
  if (cudaStatus().available) {
    assert.throws(() => requireDevice("--device", "cuda:999"), /--device cuda:999: there/);
  } else {
    assert.throws(
      () => requireDevice("--device", "cuda"),
      (e) =>
        e instanceof CliError &&
        /^--device cuda: the CUDA backend is not available/.test(e.message),
    );
  }
});

Deno.test("oneLine() keeps the first line of a message", () => {
  assert.equal(oneLine(new Error("short")), "short");
  assert.equal(oneLine(new Error("")), "Error");
  assert.equal(
    oneLine(new Error("first\nsecond")),
    "first (DENOGRAD_DEBUG=1 shows the full message)",
  );
  assert.equal(oneLine(42), "42");
});

// ---- every example and CLI as a subprocess ----

const ROOT = new URL("..", import.meta.url).pathname;
const PROGRAMS = [
  "examples/pretrain.ts",
  "examples/generate.ts",
  "examples/classify_spam.ts",
  "examples/instruct.ts",
  "examples/dpo.ts",
  "examples/lora_instruct.ts",
  "examples/long_context.ts",
  "examples/moe_vs_dense.ts",
  "examples/muon_vs_adamw.ts",
  "cli/prepare.ts",
];
const VERDICT = "examples/data/the-verdict.txt";

/** Runs a program with the examples' permissions (no writes: nothing may be written). */
async function run(program: string, ...args: string[]) {
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--no-prompt", "--allow-ffi", "--allow-read", "--allow-env", program, ...args],
    cwd: ROOT,
    env: { DENOGRAD_DEBUG: "0", NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = (b: Uint8Array) => new TextDecoder().decode(b).trimEnd();
  return { code, stdout: text(stdout), stderr: text(stderr) };
}

type Result = Awaited<ReturnType<typeof run>>;

function noStack(r: Result, what: string): void {
  assert.doesNotMatch(r.stderr, /^\s+at /m, `${what}: a stack trace on stderr:\n${r.stderr}`);
  assert.doesNotMatch(r.stderr, /Uncaught/, `${what}: an uncaught error:\n${r.stderr}`);
}

/** Exit 2, the usage on stderr, and the error as the last line. */
function isUsageError(r: Result, what: string, message: RegExp): void {
  assert.equal(r.code, 2, `${what}: exit ${r.code}, stderr:\n${r.stderr}`);
  assert.match(r.stderr, /^Usage: /m, what);
  assert.match(r.stderr.split("\n").at(-1)!, message, what);
  noStack(r, what);
}

/** Exit 1 and exactly one line on stderr. */
function isUserError(r: Result, what: string, message: RegExp): void {
  assert.equal(r.code, 1, `${what}: exit ${r.code}, stderr:\n${r.stderr}`);
  assert.equal(r.stderr.split("\n").length, 1, `${what}: more than one line:\n${r.stderr}`);
  assert.match(r.stderr, message, what);
  noStack(r, what);
}

Deno.test("every example and CLI prints its usage for --help and exits 0", async () => {
  const results = await Promise.all(PROGRAMS.map((p) => run(p, "--help")));
  for (const [i, r] of results.entries()) {
    assert.equal(r.code, 0, `${PROGRAMS[i]}: exit ${r.code}\n${r.stderr}`);
    assert.match(r.stdout, /^Usage: deno task \S+/m, PROGRAMS[i]);
    assert.match(r.stdout, /-h, --help +show this help/, PROGRAMS[i]);
  }
});

Deno.test("every example and CLI exits 2 with its usage for an unknown flag or an argument", async () => {
  const cases = PROGRAMS.flatMap((p) => [[p, "--bogus"], [p, "extra"]]);
  const results = await Promise.all(cases.map((c) => run(...(c as [string, string]))));
  for (const [i, r] of results.entries()) {
    const [program, arg] = cases[i];
    isUsageError(
      r,
      `${program} ${arg}`,
      arg === "--bogus" ? /: error: unknown flag --bogus$/ : /: error: unexpected argument "extra"/,
    );
  }
});

Deno.test("the examples exit 2 for bad numbers: negative, beyond 2^53, infinite, out of range", async () => {
  const cases: [string, string[], RegExp][] = [
    ["examples/pretrain.ts", ["--batch", "-1"], /--batch must be an integer >= 1, got "-1"$/],
    ["examples/pretrain.ts", ["--steps", "1e300"], /--steps must be an integer >= 1 and <= /],
    ["examples/pretrain.ts", ["--lr", "Infinity"], /--lr must be a finite number > 0/],
    ["examples/pretrain.ts", ["--config", "huge"], /--config must be one of /],
    ["examples/pretrain.ts", ["--device", "tpu"], /--device must be cpu, cuda or cuda:N/],
    ["examples/generate.ts", ["--top-p", "2"], /--top-p must be a finite number > 0 and <= 1/],
    ["examples/classify_spam.ts", ["--trainable", "some"], /--trainable must be all, head or/],
    ["examples/instruct.ts", ["--epochs", "1e300"], /--epochs must be a finite number > 0 and/],
    ["examples/dpo.ts", ["--beta", "NaN"], /--beta must be a finite number > 0/],
    ["examples/lora_instruct.ts", ["--rank", "0"], /--rank must be an integer >= 1/],
    ["examples/long_context.ts", ["--steps", "2.5"], /--steps must be an integer >= 1/],
    ["examples/moe_vs_dense.ts", ["--top-k", "9"], /--top-k 9 exceeds --experts 8$/],
    ["examples/muon_vs_adamw.ts", ["--muon-lr", "-Infinity"], /--muon-lr must be a finite/],
    ["cli/prepare.ts", ["--source", "sotu", "--val", "1"], /--val must be a finite/],
    [
      "cli/download.ts",
      ["gpt2", "--timeout", "Infinity"],
      /--timeout must be a finite number > 0/,
    ],
    ["cli/download.ts", ["gpt3"], /<model> must be one of gpt2, gpt2-medium/],
    ["cli/download.ts", ["gpt2", "--bogus"], /unknown flag --bogus$/],
    ["examples/pretrain.ts", ["--non-finite", "ignore"], /--non-finite must be one of stop, skip/],
  ];
  const results = await Promise.all(cases.map(([p, args]) => run(p, ...args)));
  for (const [i, r] of results.entries()) {
    isUsageError(r, `${cases[i][0]} ${cases[i][1].join(" ")}`, cases[i][2]);
  }
});

Deno.test("the examples exit 1 with one line for a missing file or an unusable device", async () => {
  const cuda = cudaStatus().available ? "cuda:999" : "cuda"; // a device that is not there
  const cases: [string, string[], RegExp][] = [
    [
      "examples/pretrain.ts",
      ["--data", "/nonexistent.txt"],
      /^pretrain: error: --data file not found: \/nonexistent\.txt$/,
    ],
    ["examples/pretrain.ts", ["--device", cuda], /^pretrain: error: --device cuda(:999)?: /],
    [
      "examples/generate.ts",
      ["--checkpoint", "/nonexistent.safetensors"],
      /--checkpoint file not found: .*\(train one/,
    ],
    [
      "examples/generate.ts",
      ["--weights", "/nonexistent.safetensors"],
      /--weights file not found: .*\(download/,
    ],
    [
      "examples/instruct.ts",
      ["--data", "/nonexistent.json"],
      /^instruct: error: --data file not found/,
    ],
    ["examples/classify_spam.ts", ["--device", cuda], /^classify-spam: error: --device cuda/],
    [
      "examples/dpo.ts",
      ["--init", "/nonexistent.safetensors"],
      /^dpo: error: --init file not found/,
    ],
    ["examples/lora_instruct.ts", ["--weights", VERDICT], /^lora: error: cannot load --weights /],
    [
      "cli/prepare.ts",
      ["--source", "/nonexistent"],
      /^prepare: error: --source \/nonexistent: /,
    ],
  ];
  const results = await Promise.all(cases.map(([p, args]) => run(p, ...args)));
  for (const [i, r] of results.entries()) {
    isUserError(r, `${cases[i][0]} ${cases[i][1].join(" ")}`, cases[i][2]);
  }
});

Deno.test("the fine-tuning examples refuse --weights together with --init", async () => {
  const results = await Promise.all(
    ["examples/dpo.ts", "examples/lora_instruct.ts"].map((p) =>
      run(p, "--weights", VERDICT, "--init", VERDICT)
    ),
  );
  for (const r of results) {
    isUsageError(r, "--weights with --init", /give --weights or --init, not both$/);
  }
});
