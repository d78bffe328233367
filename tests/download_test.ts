// The downloader against a local HTTP server on 127.0.0.1 (port 0): full downloads, hash checks,
// resuming after a dropped connection, servers with and without Range support, servers that stop
// answering (a raw TCP server), and files that are not what they claim (an HTML page served as
// model.safetensors). Every test bounds its download with a timeout and shuts the server down.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { DownloadError, downloadFile, downloadGpt2 } from "../mod.ts";
import { main as downloadMain } from "../cli/download.ts";

const DATA = (() => {
  const out = new Uint8Array(300_000);
  let x = 12345;
  for (let i = 0; i < out.length; i++) out[i] = (x = (x * 1103515245 + 12345) >>> 0) >>> 24;
  return out;
})();
const DATA_SHA = createHash("sha256").update(DATA).digest("hex");

/** A valid safetensors file: one U8 tensor holding DATA. */
const MODEL = (() => {
  const header = JSON.stringify({
    w: { dtype: "U8", shape: [DATA.length], data_offsets: [0, DATA.length] },
  });
  const json = new TextEncoder().encode(header.padEnd(Math.ceil(header.length / 8) * 8));
  const out = new Uint8Array(8 + json.length + DATA.length);
  new DataView(out.buffer).setUint32(0, json.length, true);
  out.set(json, 8);
  out.set(DATA, 8 + json.length);
  return out;
})();
const MODEL_SHA = createHash("sha256").update(MODEL).digest("hex");
const HTML = new TextEncoder().encode(
  "<!DOCTYPE html><html><head><title>Service Unavailable</title></head><body>try later</body></html>",
);
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
  /** Content-Type by path. */
  types?: Record<string, string>;
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
    if (options.types?.[path]) headers["content-type"] = options.types[path];
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
    "/openai-community/gpt2-large/resolve/main/model.safetensors": MODEL,
    "/openai-community/gpt2-large/resolve/main/config.json": CONFIG,
  };
  await withServer(files, {}, async (s, dir) => {
    const got = await downloadGpt2("gpt2-large", {
      out: dir,
      endpoint: `${s.base}/`,
      ...fast(),
      sha256: MODEL_SHA,
    });
    assert.deepEqual(got.map((f) => [f.path, f.verified]), [
      [join(dir, "gpt2-large", "model.safetensors"), true],
      [join(dir, "gpt2-large", "config.json"), false],
    ]);
    assert.deepEqual(await Deno.readFile(join(dir, "gpt2-large", "config.json")), CONFIG);
    // Present files that pass the format check are kept; without a known hash, unverified.
    const again = await downloadGpt2("gpt2-large", { out: dir, endpoint: s.base, ...fast() });
    assert.ok(again.every((f) => f.skipped && !f.replaced));
    assert.deepEqual(again.map((f) => f.sha256), got.map((f) => f.sha256));
    assert.equal(s.seen.length, 2);
  });
});

Deno.test("downloadGpt2 pins gpt2 to a commit and checks its known SHA-256", async () => {
  const files = {
    "/openai-community/gpt2/resolve/607a30d783dfa663caf39e06633721c8d4cfcd7e/model.safetensors":
      MODEL,
  };
  await withServer(files, {}, async (s, dir) => {
    await assert.rejects(
      downloadGpt2("gpt2", { out: dir, endpoint: s.base, ...fast() }),
      /SHA-256 mismatch: expected 248dfc3911869ec493c76e65bf2fcf7f615828b0254c12b473182f0f81d3a707/,
    );
    assert.deepEqual(await listDir(dir), [], "no file, and the empty gpt2/ it made is gone");
  });
});

Deno.test("the download CLI prints usage, rejects unknown models and downloads", async () => {
  assert.equal(await downloadMain(["--help"]), 0);
  assert.equal(await downloadMain(["gpt3"]), 2);
  const files = {
    "/openai-community/gpt2-xl/resolve/main/model.safetensors": MODEL,
    "/openai-community/gpt2-xl/resolve/main/config.json": CONFIG,
  };
  await withServer(files, {}, async (s, dir) => {
    const args = ["gpt2-xl", "--out", dir, "--endpoint", s.base];
    assert.equal(await downloadMain([...args, "--timeout", "0"]), 2);
    assert.equal(await downloadMain([...args, "--timeout", "soon"]), 2);
    assert.equal(await downloadMain([...args, "--timeout", "5"]), 0);
    assert.deepEqual(await Deno.readFile(join(dir, "gpt2-xl", "model.safetensors")), MODEL);
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

// ---------------------------------------------------------------------------------------------
// Servers that stop answering: a raw TCP server, so a test decides byte by byte what is sent.

interface RawRequest {
  path: string;
  range: string | null;
}

/** Reads one request head; null if the client closed first. */
async function readHead(conn: Deno.Conn): Promise<RawRequest | null> {
  const buf = new Uint8Array(8192);
  let text = "";
  while (!text.includes("\r\n\r\n")) {
    const n = await conn.read(buf);
    if (n === null) return null;
    text += new TextDecoder().decode(buf.subarray(0, n));
  }
  const [line, ...fields] = text.split("\r\n");
  const range = fields.find((f) => /^range:/i.test(f))?.replace(/^range:\s*/i, "") ?? null;
  return { path: line.split(" ")[1], range };
}

/**
 * A TCP server on 127.0.0.1 that hands each request (in order: n = 0, 1, ...) to `handler`, which
 * writes the raw answer; `closed` resolves on shutdown, for handlers that stall until then.
 */
function rawServer(
  handler: (req: RawRequest, conn: Deno.Conn, n: number, closed: Promise<void>) => Promise<void>,
) {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const seen: RawRequest[] = [];
  const conns = new Set<Deno.Conn>();
  const tasks: Promise<void>[] = [];
  const { promise: closed, resolve: shutDown } = Promise.withResolvers<void>();
  const handle = async (conn: Deno.Conn) => {
    try {
      const req = await readHead(conn);
      if (req) await handler(req, conn, seen.push(req) - 1, closed);
    } catch {
      // The client went away (a timeout on its side): nothing to answer.
    } finally {
      conns.delete(conn);
      try {
        conn.close();
      } catch { /* closed by close() below */ }
    }
  };
  const accepting = (async () => {
    for await (const conn of listener) {
      conns.add(conn);
      tasks.push(handle(conn));
    }
  })().catch(() => {});
  return {
    base: `http://127.0.0.1:${listener.addr.port}`,
    seen,
    async close() {
      shutDown();
      listener.close();
      await accepting;
      for (const c of conns) {
        try {
          c.close();
        } catch { /* already closed */ }
      }
      await Promise.all(tasks);
    },
  };
}

async function writeText(conn: Deno.Conn, text: string): Promise<void> {
  const bytes = new TextEncoder().encode(text);
  for (let off = 0; off < bytes.length;) off += await conn.write(bytes.subarray(off));
}

async function withRawServer(
  handler: Parameters<typeof rawServer>[0],
  fn: (s: ReturnType<typeof rawServer>, dir: string) => Promise<void>,
): Promise<void> {
  const s = rawServer(handler);
  const dir = await Deno.makeTempDir({ prefix: "denograd_dl_" });
  try {
    await fn(s, dir);
  } finally {
    await s.close();
    await Deno.remove(dir, { recursive: true });
  }
}

const SHORT = { timeoutMs: 200, idleTimeoutMs: 200 };

Deno.test("a refused connection names the cause, not just 'fetch failed', and leaves no .part", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = listener.addr.port;
  listener.close(); // nothing listens there now
  const dir = await Deno.makeTempDir({ prefix: "denograd_dl_" });
  try {
    await assert.rejects(
      downloadFile(`http://127.0.0.1:${port}/w.bin`, join(dir, "w.bin"), {
        ...fast(),
        retries: 1,
      }),
      (e: Error) =>
        e instanceof DownloadError && /refused/i.test(e.message) && !e.message.includes("\n") &&
        e.message.includes("after 2 attempt(s)"),
    );
    assert.deepEqual(await listDir(dir), []);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a server that accepts but never answers times out waiting for the headers", async () => {
  await withRawServer((_req, _conn, _n, closed) => closed, async (s, dir) => {
    const started = performance.now();
    await assert.rejects(
      downloadFile(`${s.base}/w.bin`, join(dir, "w.bin"), { ...fast(), ...SHORT, retries: 1 }),
      (e: Error) =>
        e instanceof DownloadError &&
        e.message.includes("timed out after 0.2 s waiting for the headers (after 2 attempt(s))"),
    );
    assert.ok(performance.now() - started < 5000);
    assert.equal(s.seen.length, 2);
    assert.deepEqual(await listDir(dir), [], "no empty .part file");
  });
});

/** Sends `data` from the requested offset: the first request stalls after `stallAt` bytes. */
function stallingHandler(data: Uint8Array, stallAt: number) {
  return async (req: RawRequest, conn: Deno.Conn, n: number, closed: Promise<void>) => {
    const start = Number(/^bytes=(\d+)-$/.exec(req.range ?? "")?.[1] ?? 0);
    const range = start > 0
      ? `content-range: bytes ${start}-${data.length - 1}/${data.length}\r\n`
      : "";
    await writeText(
      conn,
      `HTTP/1.1 ${start > 0 ? "206 Partial Content" : "200 OK"}\r\n` +
        `content-length: ${data.length - start}\r\n${range}connection: close\r\n\r\n`,
    );
    if (n === 0) {
      await conn.write(data.subarray(start, stallAt));
      await closed; // headers and some bytes, then silence with the connection open
      return;
    }
    for (let off = start; off < data.length;) off += await conn.write(data.subarray(off));
  };
}

Deno.test("a body that stalls times out, keeps the bytes and resumes with Range on the retry", async () => {
  await withRawServer(stallingHandler(DATA, 100_000), async (s, dir) => {
    const dest = join(dir, "w.bin");
    const r = await downloadFile(`${s.base}/w.bin`, dest, {
      ...fast(),
      ...SHORT,
      sha256: DATA_SHA,
    });
    assert.deepEqual(s.seen.map((x) => x.range), [null, "bytes=100000-"]);
    assert.equal(r.verified, true);
    assert.deepEqual(await Deno.readFile(dest), DATA);
    assert.deepEqual(await listDir(dir), ["w.bin"]);
  });
});

Deno.test("a stalled body without retries says how long it waited and after how many bytes", async () => {
  await withRawServer(stallingHandler(DATA, 100_000), async (s, dir) => {
    const dest = join(dir, "w.bin");
    await assert.rejects(
      downloadFile(`${s.base}/w.bin`, dest, { ...fast(), ...SHORT, retries: 0 }),
      /no data for 0\.2 s after 100000 bytes \(after 1 attempt\(s\)\); the 100000 bytes received are kept/,
    );
    assert.equal((await Deno.stat(`${dest}.part`)).size, 100_000);
  });
});

Deno.test("downloadFile rejects a timeout that is not a positive number", async () => {
  await assert.rejects(
    downloadFile("http://127.0.0.1:9/x", "/tmp/x", { timeoutMs: 0 }),
    RangeError,
  );
  await assert.rejects(
    downloadFile("http://127.0.0.1:9/x", "/tmp/x", { idleTimeoutMs: NaN }),
    RangeError,
  );
});

// ---------------------------------------------------------------------------------------------
// Files that are not what they claim to be.

const MEDIUM = "/openai-community/gpt2-medium/resolve/main";

Deno.test("an HTML page served with 200 as model.safetensors is rejected and nothing is kept", async () => {
  const files = { [`${MEDIUM}/model.safetensors`]: HTML, [`${MEDIUM}/config.json`]: CONFIG };
  const types = { [`${MEDIUM}/model.safetensors`]: "text/html; charset=utf-8" };
  await withServer(files, { types }, async (s, dir) => {
    const out = join(dir, "models", "nested");
    await assert.rejects(
      downloadGpt2("gpt2-medium", { out, endpoint: s.base, ...fast() }),
      (e: Error) =>
        e instanceof DownloadError && e.message.includes("not a valid safetensors file") &&
        e.message.includes("the server sent text/html") &&
        e.message.includes('starting with "<!DOCTYPE html>') &&
        e.message.endsWith("the download was deleted") && !e.message.includes("\n"),
    );
    assert.equal(s.seen.length, 1, "a bad file is not retried");
    assert.deepEqual(await listDir(dir), [], "no file, no .part, no directories it created");
  });
});

Deno.test("a config.json that is not JSON is rejected; the good model.safetensors stays", async () => {
  const files = { [`${MEDIUM}/model.safetensors`]: MODEL, [`${MEDIUM}/config.json`]: HTML };
  await withServer(files, {}, async (s, dir) => {
    await assert.rejects(
      downloadGpt2("gpt2-medium", { out: dir, endpoint: s.base, ...fast() }),
      /config\.json: not valid JSON: .*starting with "<!DOCTYPE html>/,
    );
    assert.deepEqual(await listDir(join(dir, "gpt2-medium")), ["model.safetensors"]);
  });
});

Deno.test("a body shorter than its Content-Length is truncated, not complete", async () => {
  const handler = async (_req: RawRequest, conn: Deno.Conn) => {
    await writeText(conn, `HTTP/1.1 200 OK\r\ncontent-length: 1000\r\nconnection: close\r\n\r\n`);
    await conn.write(DATA.subarray(0, 600)); // then the connection closes
  };
  await withRawServer(handler, async (s, dir) => {
    const dest = join(dir, "w.bin");
    await assert.rejects(
      downloadFile(`${s.base}/w.bin`, dest, { ...fast(), ...SHORT, retries: 0 }),
      /the 600 bytes received are kept/,
    );
    assert.deepEqual(await listDir(dir), ["w.bin.part"]);
  });
});

Deno.test("an existing garbage model.safetensors is not 'already present' and is replaced", async () => {
  const files = { [`${MEDIUM}/model.safetensors`]: MODEL, [`${MEDIUM}/config.json`]: CONFIG };
  await withServer(files, {}, async (s, dir) => {
    await Deno.mkdir(join(dir, "gpt2-medium"));
    await Deno.writeFile(join(dir, "gpt2-medium", "model.safetensors"), HTML);
    await Deno.writeFile(join(dir, "gpt2-medium", "config.json"), CONFIG);
    const got = await downloadGpt2("gpt2-medium", { out: dir, endpoint: s.base, ...fast() });
    assert.equal(got[0].skipped, false);
    assert.match(got[0].replaced ?? "", /^not a valid safetensors file: header length \d+/);
    assert.equal(got[0].sha256, MODEL_SHA);
    assert.equal(got[1].skipped, true, "the valid config.json is kept");
    assert.deepEqual(s.seen.map((x) => x.path), [`${MEDIUM}/model.safetensors`]);
    assert.deepEqual(await Deno.readFile(join(dir, "gpt2-medium", "model.safetensors")), MODEL);
  });
});

Deno.test("a present file with a pinned hash that differs is downloaded again", async () => {
  await withServer({ "/w.bin": DATA }, {}, async (s, dir) => {
    const dest = join(dir, "w.bin");
    await Deno.writeTextFile(dest, "old");
    const r = await downloadFile(`${s.base}/w.bin`, dest, { ...fast(), sha256: DATA_SHA });
    assert.match(r.replaced ?? "", /^its SHA-256 [0-9a-f]{64} is not the expected /);
    assert.deepEqual(await Deno.readFile(dest), DATA);
  });
});

Deno.test("a short 200 answer to a range request does not wipe the partial download", async () => {
  const types = { "/w.bin": "text/html" };
  await withServer({ "/w.bin": HTML }, { ignoreRange: true, types }, async (s, dir) => {
    const dest = join(dir, "w.bin");
    await Deno.writeFile(`${dest}.part`, DATA.subarray(0, 1000));
    await assert.rejects(
      downloadFile(`${s.base}/w.bin`, dest, fast()),
      /asked for bytes from 1000, the server sent a whole \d+-byte answer \(text\/html\) instead; kept/,
    );
    assert.equal(s.seen.length, 1, "not retried");
    assert.deepEqual(await Deno.readFile(`${dest}.part`), DATA.subarray(0, 1000));
  });
});
