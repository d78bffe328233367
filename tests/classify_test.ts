// Classification fine-tuning: the head replacement trains exactly the chosen parameters, the
// class is read at the last real token (padding cannot change it), a tiny model learns a
// synthetic task that needs attention, the scores match a hand computation, the data helpers
// split and balance as documented, and bad input fails with a message naming the culprit.
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  balanceClasses,
  type ClassificationExample,
  collateClassification,
  evaluateClassifier,
  finetuneClassifier,
  GPT2,
  GPT2Classifier,
  type GPT2Config,
  gpt2Config,
  loadGpt2Safetensors,
  manualSeed,
  Module,
  noGrad,
  randomSplit,
  readMetrics,
  saveGpt2Safetensors,
  type SequenceClassifier,
  subjectAndBody,
  type Tensor,
  tensor,
  tidy,
  tokenizeLabeled,
} from "../mod.ts";

const config: GPT2Config = {
  vocabSize: 64,
  contextLength: 16,
  nEmbd: 16,
  nLayer: 3,
  nHead: 4,
  dropout: 0,
  bias: true,
};

function classifier(seed: number, trainable?: "all" | "head" | number, numClasses = 2) {
  manualSeed(seed);
  return new GPT2Classifier(new GPT2(config), { numClasses, trainable });
}

// Parameter counts written out from the architecture (C = 16, n classes):
// a block is ln_1 2C + c_attn (3C·C + 3C) + attn c_proj (C·C + C) + ln_2 2C + c_fc (4C·C + 4C)
// + mlp c_proj (4C·C + C) = 12C² + 13C; ln_f is 2C; the head n·C + n.
const C = 16;
const BLOCK = 12 * C * C + 13 * C; // 3280
const LN_F = 2 * C;
const head = (n: number) => n * C + n;
const EMBEDDINGS = 64 * C + 16 * C; // wte + wpe

Deno.test("GPT2Classifier trains the last block, ln_f and the head by default, nothing else", () => {
  const clf = classifier(0);
  assert.equal(clf.numParameters(), BLOCK + LN_F + head(2));
  assert.equal(clf.numParameters({ includeFrozen: true }), EMBEDDINGS + 3 * BLOCK + LN_F + head(2));
  const names = clf.namedParameters().map(([n]) => n);
  assert.ok(
    names.every((n) => /^(transformer\.h\.2\.|transformer\.ln_f\.|head\.)/.test(n)),
    names.join(),
  );
  assert.deepEqual(names.filter((n) => n.startsWith("head.")), ["head.weight", "head.bias"]);
  clf.dispose();
});

Deno.test("GPT2Classifier trainable: 'all', 'head', 0 and 2 blocks give the counts worked by hand", () => {
  const count = (trainable: "all" | "head" | number, numClasses = 2) => {
    const clf = classifier(0, trainable, numClasses);
    const n = clf.numParameters();
    clf.dispose();
    return n;
  };
  assert.equal(count("all", 3), EMBEDDINGS + 3 * BLOCK + LN_F + head(3));
  assert.equal(count("head", 3), head(3));
  assert.equal(count(0), LN_F + head(2));
  assert.equal(count(2), 2 * BLOCK + LN_F + head(2));
  // Switching back and forth lands on the same sets.
  const clf = classifier(0, "all").setTrainable(1);
  assert.equal(clf.numParameters(), BLOCK + LN_F + head(2));
  clf.dispose();
});

Deno.test("a classifier on GPT-2 weights loaded from safetensors keeps the loaded trunk", async () => {
  const path = await Deno.makeTempFile({ suffix: ".safetensors" });
  try {
    manualSeed(5);
    const original = new GPT2(config);
    await saveGpt2Safetensors(original, path);
    manualSeed(6); // a different init, overwritten by the load
    const loaded = new GPT2(config);
    await loadGpt2Safetensors(loaded, path);
    const clf = new GPT2Classifier(loaded, { numClasses: 2 });
    const state = clf.stateDict();
    for (const [name, t] of Object.entries(original.stateDict())) {
      assert.deepEqual(state[`transformer.${name}`].toTypedArray(), t.toTypedArray(), name);
    }
    assert.deepEqual(Object.keys(state).filter((n) => !n.startsWith("transformer.")), [
      "head.weight",
      "head.bias",
    ]);
    // The head reads the trunk's final hidden state at the last real token: check by hand.
    tidy(() =>
      noGrad(() => {
        const idx = tensor([[3, 4, 5, 6], [7, 8, 0, 0]], { dtype: "i32" });
        const h = original.hiddenStates(idx).toArray() as number[][][]; // (2, 4, C)
        const w = clf.head.weight.toArray() as number[][], b = clf.head.bias!.toArray() as number[];
        const logits = clf.forward(idx, [4, 2]).toArray() as number[][];
        [[0, 3], [1, 1]].forEach(([row, pos]) => {
          for (let c = 0; c < 2; c++) {
            const expected = w[c].reduce((acc, wi, i) => acc + wi * h[row][pos][i], b[c]);
            assert.ok(Math.abs(logits[row][c] - expected) < 1e-5, `${logits[row][c]} ${expected}`);
          }
        });
      })
    );
    clf.dispose();
    original.dispose();
  } finally {
    await Deno.remove(path);
  }
});

Deno.test("a training step changes exactly the trainable parameters and gives frozen ones no gradient", async () => {
  const clf = classifier(3, 1, 3);
  const before = new Map(
    clf.namedParameters({ includeFrozen: true }).map(([n, t]) => [n, t.toTypedArray().slice()]),
  );
  const train = makeTask(16, 11);
  await finetuneClassifier({
    model: clf,
    train,
    batchSize: 8,
    steps: 1,
    maxLr: 1e-2,
    padToken: 0,
    progress: false,
    log: () => {},
  });
  const trainable = new Set(clf.namedParameters().map(([n]) => n));
  for (const [name, t] of clf.namedParameters({ includeFrozen: true })) {
    const changed = t.toTypedArray().some((v, i) => v !== before.get(name)![i]);
    assert.equal(changed, trainable.has(name), `${name} changed: ${changed}`);
    assert.equal(t.grad, null, `${name} keeps no gradient after the step`);
  }
  clf.dispose();
});

Deno.test("the class is read at the last real token: right padding does not change the logits", () => {
  const clf = classifier(1);
  const text = [5, 9, 13, 2, 40];
  tidy(() =>
    noGrad(() => {
      const alone = clf.forward(tensor([text], { dtype: "i32" })).toTypedArray(); // (1, 2)
      // The same text in a batch, padded by 3 with two different pad ids, beside a longer row.
      const padded = tensor([
        [...text, 0, 0, 0],
        [1, 2, 3, 4, 5, 6, 7, 8],
        [...text, 63, 62, 61],
      ], { dtype: "i32" });
      const out = clf.forward(padded, [5, 8, 5]).toTypedArray(); // (3, 2)
      for (const row of [0, 2]) {
        for (let c = 0; c < 2; c++) assert.ok(Math.abs(out[row * 2 + c] - alone[c]) < 1e-5);
      }
      // Reading the last position instead (what ignoring lengths does) gives other logits.
      const wrong = clf.forward(padded).toTypedArray();
      assert.ok(Math.abs(wrong[0] - alone[0]) > 1e-4);
    })
  );
  clf.dispose();
});

Deno.test("collateClassification pads to the longest row or to a fixed length", () => {
  const ex = [{ ids: Int32Array.of(5, 6, 7), label: 1 }, { ids: Int32Array.of(8), label: 0 }];
  const a = collateClassification(ex, { padToken: 0 });
  assert.deepEqual(a.input.toArray(), [[5, 6, 7], [8, 0, 0]]);
  assert.deepEqual(a.labels.toArray(), [1, 0]);
  assert.deepEqual(a.lengths, [3, 1]);
  const b = collateClassification(ex, { padTo: 5 });
  assert.deepEqual(b.input.toArray(), [[5, 6, 7, 50256, 50256], [8, 50256, 50256, 50256, 50256]]);
  assert.throws(
    () => collateClassification(ex, { padTo: 2 }),
    /example 0 has 3 tokens, more than padTo = 2/,
  );
  for (const t of [a.input, a.labels, b.input, b.labels]) t.dispose();
});

/**
 * Sequences of 3..12 tokens from 10..63; class 1 holds a 5 somewhere, class 2 a 6, class 0
 * neither. The position varies, so the last token must attend back to find it.
 */
function makeTask(n: number, seed: number): ClassificationExample[] {
  let s = seed;
  const rand = () => (s = (s * 1103515245 + 12345) % 2147483648) / 2147483648;
  return Array.from({ length: n }, (_, i) => {
    const label = i % 3;
    const len = 3 + Math.floor(rand() * 10);
    const ids = Int32Array.from({ length: len }, () => 10 + Math.floor(rand() * 54));
    if (label > 0) ids[Math.floor(rand() * len)] = 4 + label;
    return { ids, label };
  });
}

Deno.test("a tiny classifier learns a 3-class task that needs attention, memory flat", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const clf = classifier(7, "all", 3);
    const train = makeTask(480, 1), val = makeTask(96, 2), test = makeTask(96, 3);
    const before = evaluateClassifier(clf, val, { padToken: 0 }).accuracy;
    const result = await finetuneClassifier({
      model: clf,
      train,
      val,
      test,
      batchSize: 16,
      epochs: 5,
      maxLr: 3e-3,
      minLr: 3e-4,
      warmup: 10,
      clip: 1,
      padToken: 0,
      evalEvery: 50,
      evalBatches: 2,
      checkpointPath: join(dir, "model.safetensors"),
      progress: false,
      log: () => {},
    });
    assert.ok(before < 0.5, `chance level before training, got ${before}`);
    assert.ok(result.final.val!.accuracy >= 0.9, `val accuracy ${result.final.val!.accuracy}`);
    assert.ok(result.final.test!.accuracy >= 0.9, `test accuracy ${result.final.test!.accuracy}`);
    assert.equal(result.final.test!.examples, 96);
    assert.equal(result.step, 150); // 5 epochs x 30 batches
    assert.equal(result.liveBytes[1], result.liveBytes[0]);
    // Metrics hold every step and the periodic evaluations with accuracies; the summary the finals.
    const metrics = await readMetrics(join(dir, "metrics.jsonl"));
    assert.equal(metrics.filter((r) => r.kind === "train").length, 150);
    const evals = metrics.filter((r) => r.kind === "val") as unknown as { accuracy: number }[];
    assert.deepEqual(evals.map((r) => (r as unknown as { step: number }).step), [50, 100, 150]);
    assert.ok(evals.every((r) => r.accuracy >= 0 && r.accuracy <= 1));
    const summary = JSON.parse(await Deno.readTextFile(join(dir, "summary.json")));
    assert.deepEqual(summary.test, result.final.test);
    assert.match(await Deno.readTextFile(join(dir, "loss.svg")), /^<svg/);
    assert.match(await Deno.readTextFile(join(dir, "accuracy.svg")), /^<svg[\s\S]*Accuracy/);
    clf.dispose();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/** A classifier with fixed logits per first token, to check the scoring arithmetic. */
class FixedLogits extends Module implements SequenceClassifier {
  readonly numClasses = 3;
  readonly device = "cpu" as const;
  forward(idx: Tensor): Tensor {
    const rows = idx.toArray() as number[][];
    const table: Record<number, number[]> = { 1: [2, 0, 0], 2: [0, 1, 3], 3: [1, 1, 1] };
    return tensor(rows.map((r) => table[r[0]]));
  }
  loss(): Tensor {
    throw new Error("not used");
  }
}

Deno.test("evaluateClassifier's loss and accuracy equal a hand computation", () => {
  const data = [
    { ids: Int32Array.of(1), label: 0 }, // correct, loss ln(e²+2) - 2
    { ids: Int32Array.of(2, 7), label: 1 }, // wrong (class 2 wins), loss ln(1+e+e³) - 1
    { ids: Int32Array.of(3), label: 2 }, // a tie goes to the first class: wrong, loss ln 3
  ];
  const score = evaluateClassifier(new FixedLogits(), data, { batchSize: 2, padToken: 0 });
  const expected = (Math.log(Math.E ** 2 + 2) - 2 + Math.log(1 + Math.E + Math.E ** 3) - 1 +
    Math.log(3)) / 3;
  assert.ok(Math.abs(score.loss - expected) < 1e-6, `${score.loss} vs ${expected}`);
  assert.equal(score.accuracy, 1 / 3);
  assert.equal(score.examples, 3);
});

Deno.test("balanceClasses keeps the minority count of each class; randomSplit cuts 70/10/20", () => {
  const items = Array.from(
    { length: 1000 },
    (_, i) => ({ text: `m${i}`, label: i % 4 === 0 ? 1 : 0 }),
  );
  const balanced = balanceClasses(items, { seed: 123 });
  assert.equal(balanced.filter((x) => x.label === 1).length, 250);
  assert.equal(balanced.filter((x) => x.label === 0).length, 250);
  assert.deepEqual(balanced, balanceClasses(items, { seed: 123 })); // seeded
  assert.notDeepEqual(balanced, balanceClasses(items, { seed: 124 }));
  const { train, val, test } = randomSplit(balanced, { train: 0.7, val: 0.1, seed: 123 });
  assert.deepEqual([train.length, val.length, test.length], [350, 50, 100]);
  const all = new Set([...train, ...val, ...test].map((x) => x.text));
  assert.equal(all.size, 500); // a partition: nothing lost, nothing twice
  // The book's SMS counts: 747 + 747 -> 1045 / 149 / 300.
  const book = randomSplit([...Array(1494).keys()], { train: 0.7, val: 0.1 });
  assert.deepEqual([book.train.length, book.val.length, book.test.length], [1045, 149, 300]);
});

Deno.test("subjectAndBody keeps the (folded) Subject and the body, drops the other headers", () => {
  const raw = "From: a@b.c\r\nSubject: Win a\r\n  prize now\r\nReceived: by relay.example\r\n\r\n" +
    "Hello there.\r\nBye.\r\n";
  assert.equal(subjectAndBody(raw), "Subject: Win a prize now\n\nHello there.\nBye.");
  assert.equal(subjectAndBody("X-A: 1\n\nbody only"), "Subject: \n\nbody only");
});

Deno.test("tokenizeLabeled truncates to maxLength and names a bad item", () => {
  const bytes = { encode: (s: string) => [...new TextEncoder().encode(s)] };
  const out = tokenizeLabeled([{ text: "hello", label: 1 }, { text: "hi", label: 0 }], bytes, {
    maxLength: 3,
  });
  assert.deepEqual(out.map((e) => [...e.ids]), [[104, 101, 108], [104, 105]]);
  assert.throws(
    () =>
      tokenizeLabeled([{ text: "a", label: 0 }, { text: "", label: 1 }], bytes, { maxLength: 3 }),
    /tokenizeLabeled: item 1: the text has no tokens/,
  );
  assert.throws(
    () => tokenizeLabeled([{ text: "a", label: -1 }], bytes, { maxLength: 3 }),
    /item 0 must have an integer label >= 0/,
  );
});

Deno.test("bad classifier options and data fail with the culprit named", async () => {
  manualSeed(0);
  const gpt = new GPT2(gpt2Config("small-test"));
  assert.throws(
    () => new GPT2Classifier(gpt, { numClasses: 1 }),
    /numClasses must be an integer >= 2, got 1/,
  );
  assert.throws(
    () => new GPT2Classifier(gpt, { numClasses: 2, trainable: 3 }),
    /trainable must be "all", "head" or a block count in \[0, 2\], got 3/,
  );
  const clf = new GPT2Classifier(gpt, { numClasses: 2 });
  assert.throws(
    () => clf.forward(tensor([[1, 2]], { dtype: "i32" }), [3]),
    /lengths\[0\] = 3 is not in \[1, 2\]/,
  );
  const train = [{ ids: Int32Array.of(1, 2), label: 0 }, { ids: Int32Array.of(3), label: 2 }];
  await assert.rejects(
    finetuneClassifier({ model: clf, train, steps: 1, progress: false }),
    /train\[1\]\.label = 2 is not a class in \[0, 2\)/,
  );
  clf.freeze();
  await assert.rejects(
    finetuneClassifier({
      model: clf,
      train: train.slice(0, 1),
      batchSize: 1,
      steps: 1,
      progress: false,
    }),
    /no trainable parameters/,
  );
  clf.dispose();
});
