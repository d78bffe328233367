// The downloader against a local HTTP server on 127.0.0.1 (port 0): full downloads, hash checks,
// resuming after a dropped connection, servers with and without Range support. Every test
// bounds its download with a timeout and shuts the server down.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { DownloadError, downloadFile, downloadGpt2 } from "../mod.ts";
import { main as downloadMain } from "../src/models/gpt2/download_cli.ts";

const DATA = (() => {
  const out = new Uint8Array(300_000);
  let x = 12345;
  for (let i = 0; i < out.length; i++) out[i] = (x = (x * 1103515245 + 12345) >>> 0) >>> 24;
  return out;
})();
const DATA_SHA = createHash("sha256").update(DATA).digest("hex");
const TIMEOUT_MS = 10_000;

interface Seen {
  path: string;
  range: string | null;
}

interface ServeOptions {
  /** Per request (in order): bytes of the body to send before dropping the connection. */
  dropAfter?: number[];
  /** Answer every request with the whole file (200), as a server without range support. */
  ignoreRange?: boolean;
}

/** A local server for `files` (path -> bytes); everything else is 404. */
function serve(files: Record<string, Uint8Array<ArrayBuffer>>, options: ServeOptions = {}) {
  const seen: Seen[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (req) => {
    const path = new URL(req.url).pathname;
    const range = req.headers.get("range");
    const n = seen.push({ path, range }) - 1;
    const data = files[path];
    if (!data) return new Response("not found", { status: 404, statusText: "Not Found" });
    let start = 0;
    const m = /^bytes=(\d+)-$/.exec(range ?? "");
    if (m && !options.ignoreRange) {
      start = Number(m[1]);
      if (start >= data.length) {
        return new Response(null, {
          status: 416,
          headers: { "content-range": `bytes */${data.length}` },
        });
      }
    }
    const body = data.subarray(start);
    const headers: Record<string, string> = { "content-length": String(body.length) };
    if (start > 0) headers["content-range"] = `bytes ${start}-${data.length - 1}/${data.length}`;
    const status = start > 0 ? 206 : 200;
    const drop = options.dropAfter?.[n];
    if (drop === undefined) return new Response(body, { status, headers });
    // Send `drop` bytes, then end the stream short of content-length: the client sees the
    // connection close mid-body.
    const stream = new ReadableStream<Uint8Array>({
      start(c) {
        c.enqueue(body.slice(0, drop));
        c.close();
      },
    });
    return new Response(stream, { status, headers });
  });
  return {
    base: `http://127.0.0.1:${server.addr.port}`,
    seen,
    close: () => server.shutdown(),
  };
}

async function withServer(
  files: Record<string, Uint8Array<ArrayBuffer>>,
  options: ServeOptions,
  fn: (s: ReturnType<typeof serve>, dir: string) => Promise<void>,
): Promise<void> {
  const s = serve(files, options);
  const dir = await Deno.makeTempDir({ prefix: "denograd_dl_" });
  try {
    await fn(s, dir);
  } finally {
    await s.close();
    await Deno.remove(dir, { recursive: true });
  }
}

async function listDir(dir: string): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(dir)) out.push(e.name);
  return out.sort();
}

const fast = () => ({ retryDelayMs: 0, signal: AbortSignal.timeout(TIMEOUT_MS) });

Deno.test("downloadFile streams a whole file to disk and reports its SHA-256", async () => {
  await withServer({ "/w.bin": DATA }, {}, async (s, dir) => {
    const dest = join(dir, "w.bin");
    const progress: [number, number | undefined][] = [];
    const r = await downloadFile(`${s.base}/w.bin`, dest, {
      ...fast(),
      onProgress: (got, total) => progress.push([got, total]),
    });
    assert.deepEqual(await Deno.readFile(dest), DATA);
    assert.equal(r.sha256, DATA_SHA);
    assert.equal(r.bytes, DATA.length);
    assert.equal(r.verified, false);
    assert.deepEqual(progress.at(-1), [DATA.length, DATA.length]);
    assert.deepEqual(await listDir(dir), ["w.bin"]);
    assert.equal(s.seen[0].range, null);
  });
});

Deno.test("downloadFile verifies a matching hash and skips a file already in place", async () => {
  await withServer({ "/w.bin": DATA }, {}, async (s, dir) => {
    const dest = join(dir, "w.bin");
    const r = await downloadFile(`${s.base}/w.bin`, dest, { ...fast(), sha256: DATA_SHA });
    assert.equal(r.verified, true);
    const again = await downloadFile(`${s.base}/w.bin`, dest, {
      ...fast(),
      sha256: DATA_SHA.toUpperCase(),
    });
    assert.equal(again.skipped, true);
    assert.equal(s.seen.length, 1, "no second request");
  });
});

Deno.test("a hash mismatch names both hashes, deletes the download and keeps the old file", async () => {
  await withServer({ "/w.bin": DATA }, {}, async (s, dir) => {
    const dest = join(dir, "w.bin");
    await Deno.writeTextFile(dest, "previous version");
    const wrong = "0".repeat(64);
    await assert.rejects(
      downloadFile(`${s.base}/w.bin`, dest, { ...fast(), sha256: wrong }),
      (e: Error) =>
        e instanceof DownloadError && e.message.includes(`expected ${wrong}`) &&
        e.message.includes(`got ${DATA_SHA}`),
    );
    assert.equal(await Deno.readTextFile(dest), "previous version");
    assert.deepEqual(await listDir(dir), ["w.bin"]);
  });
});

Deno.test("an interrupted download keeps the .part file and the next call resumes with Range", async () => {
  await withServer({ "/w.bin": DATA }, { dropAfter: [120_000] }, async (s, dir) => {
    const dest = join(dir, "w.bin");
    await assert.rejects(
      downloadFile(`${s.base}/w.bin`, dest, { ...fast(), retries: 0 }),
      /connection lost.*120000 bytes received are kept in .*w\.bin\.part, run again to resume/,
    );
    assert.deepEqual(await listDir(dir), ["w.bin.part"]);
    assert.equal((await Deno.stat(`${dest}.part`)).size, 120_000);
    const r = await downloadFile(`${s.base}/w.bin`, dest, { ...fast(), sha256: DATA_SHA });
    assert.equal(s.seen[1].range, "bytes=120000-");
    assert.equal(r.resumedFrom, 120_000);
    assert.equal(r.verified, true, "the hash covers the resumed bytes too");
    assert.deepEqual(await Deno.readFile(dest), DATA);
    assert.deepEqual(await listDir(dir), ["w.bin"]);
  });
});

Deno.test("downloadFile retries dropped connections by itself, resuming each time", async () => {
  await withServer({ "/w.bin": DATA }, { dropAfter: [50_000, 70_000] }, async (s, dir) => {
    const dest = join(dir, "w.bin");
    const r = await downloadFile(`${s.base}/w.bin`, dest, { ...fast(), sha256: DATA_SHA });
    assert.deepEqual(s.seen.map((x) => x.range), [null, "bytes=50000-", "bytes=120000-"]);
    assert.equal(r.bytes, DATA.length);
    assert.deepEqual(await Deno.readFile(dest), DATA);
  });
});

Deno.test("a server that ignores Range (200) makes the download restart from zero", async () => {
  await withServer({ "/w.bin": DATA }, { ignoreRange: true }, async (s, dir) => {
    const dest = join(dir, "w.bin");
    await Deno.writeFile(`${dest}.part`, new Uint8Array(1000).fill(7)); // stale, wrong bytes
    const r = await downloadFile(`${s.base}/w.bin`, dest, { ...fast(), sha256: DATA_SHA });
    assert.equal(s.seen[0].range, "bytes=1000-");
    assert.equal(r.bytes, DATA.length);
    assert.deepEqual(await Deno.readFile(dest), DATA);
  });
});

Deno.test("a complete .part file (416 to the range request) is verified and moved into place", async () => {
  await withServer({ "/w.bin": DATA }, {}, async (s, dir) => {
    const dest = join(dir, "w.bin");
    await Deno.writeFile(`${dest}.part`, DATA);
    const r = await downloadFile(`${s.base}/w.bin`, dest, { ...fast(), sha256: DATA_SHA });
    assert.equal(s.seen[0].range, `bytes=${DATA.length}-`);
    assert.equal(r.verified, true);
    assert.deepEqual(await listDir(dir), ["w.bin"]);
  });
});

Deno.test("an HTTP error status is reported with the status and not retried", async () => {
  await withServer({}, {}, async (s, dir) => {
    await assert.rejects(
      downloadFile(`${s.base}/missing.bin`, join(dir, "m.bin"), fast()),
      (e: Error) =>
        e instanceof DownloadError && e.status === 404 && /HTTP 404 Not Found/.test(e.message),
    );
    assert.equal(s.seen.length, 1);
    assert.deepEqual(await listDir(dir), []);
  });
});

Deno.test("downloadFile rejects a malformed expected hash before any request", async () => {
  await assert.rejects(
    downloadFile("http://127.0.0.1:9/x", "/tmp/x", { sha256: "abc" }),
    TypeError,
  );
});

const CONFIG = new TextEncoder().encode('{"n_embd": 1280, "n_layer": 36, "n_head": 20}');

Deno.test("downloadGpt2 fetches model.safetensors and config.json into <out>/<name>/", async () => {
  const files = {
    "/openai-community/gpt2-large/resolve/main/model.safetensors": DATA,
    "/openai-community/gpt2-large/resolve/main/config.json": CONFIG,
  };
  await withServer(files, {}, async (s, dir) => {
    const got = await downloadGpt2("gpt2-large", {
      out: dir,
      endpoint: `${s.base}/`,
      ...fast(),
      sha256: DATA_SHA,
    });
    assert.deepEqual(got.map((f) => [f.path, f.verified]), [
      [join(dir, "gpt2-large", "model.safetensors"), true],
      [join(dir, "gpt2-large", "config.json"), false],
    ]);
    assert.deepEqual(await Deno.readFile(join(dir, "gpt2-large", "config.json")), CONFIG);
    // Present files without a known hash are kept as they are.
    const again = await downloadGpt2("gpt2-large", { out: dir, endpoint: s.base, ...fast() });
    assert.ok(again.every((f) => f.skipped));
    assert.equal(s.seen.length, 2);
  });
});

Deno.test("downloadGpt2 pins gpt2 to a commit and checks its known SHA-256", async () => {
  const files = {
    "/openai-community/gpt2/resolve/607a30d783dfa663caf39e06633721c8d4cfcd7e/model.safetensors":
      DATA,
  };
  await withServer(files, {}, async (s, dir) => {
    await assert.rejects(
      downloadGpt2("gpt2", { out: dir, endpoint: s.base, ...fast() }),
      /SHA-256 mismatch: expected 248dfc3911869ec493c76e65bf2fcf7f615828b0254c12b473182f0f81d3a707/,
    );
    assert.deepEqual(await listDir(join(dir, "gpt2")), []);
  });
});

Deno.test("the download CLI prints usage, rejects unknown models and downloads", async () => {
  assert.equal(await downloadMain(["--help"]), 0);
  assert.equal(await downloadMain(["gpt3"]), 2);
  const files = {
    "/openai-community/gpt2-xl/resolve/main/model.safetensors": DATA,
    "/openai-community/gpt2-xl/resolve/main/config.json": CONFIG,
  };
  await withServer(files, {}, async (s, dir) => {
    assert.equal(await downloadMain(["gpt2-xl", "--out", dir, "--endpoint", s.base]), 0);
    assert.deepEqual(await Deno.readFile(join(dir, "gpt2-xl", "model.safetensors")), DATA);
    assert.equal(
      await downloadMain([
        "gpt2-xl",
        "--out",
        dir,
        "--endpoint",
        s.base,
        "--sha256",
        "f".repeat(64),
      ]),
      1,
    );
  });
});
