// Bad input: each error class names the op and what was wrong, and leaves nothing behind.
import assert from "node:assert/strict";
import {
  arange,
  cat,
  crossEntropy,
  cudaStatus,
  embedding,
  full,
  indexSelect,
  layerNorm,
  matmul,
  memoryStats,
  randn,
  Tensor,
  tensor,
  zeros,
} from "../mod.ts";
import { CpuBackend } from "../src/backend/cpu/mod.ts";

Deno.test("shape errors name the op and both shapes", () => {
  assert.throws(() => matmul(zeros([2, 3]), zeros([4, 5])), {
    name: "RangeError",
    message: "matmul: inner dimensions differ: [2,3] @ [4,5]",
  });
  assert.throws(
    () => zeros([2, 3]).add(zeros([4])),
    /add: shapes \[2,3\] and \[4\] cannot be broadcast/,
  );
  assert.throws(
    () => cat([zeros([2, 3]), zeros([2, 4])], 0),
    /cat: shapes \[2,3\] and \[2,4\] differ/,
  );
  assert.throws(() => zeros([6]).reshape([4, -1]), /reshape: cannot view \[6\]/);
  assert.throws(() => zeros([2, 3]).transpose(0, 1).view([6]), /view: .*use reshape/);
  assert.throws(() => layerNorm(zeros([2, 3]), [4]), /layerNorm: normalizedShape \[4\]/);
  assert.throws(() => zeros([2, 3]).expand([4, 3]), /expand: cannot expand \[2,3\] to \[4,3\]/);
});

Deno.test("dtype errors name the op and the dtypes", () => {
  assert.throws(() => matmul(zeros([2, 2], { dtype: "i32" }), zeros([2, 2])), {
    name: "TypeError",
    message: "matmul: input must be f32, got i32 of shape [2,2]",
  });
  assert.throws(() => crossEntropy(zeros([2, 3]), zeros([2])), /crossEntropy: targets must be i32/);
  assert.throws(() => embedding(zeros([2]), zeros([4, 3])), /embedding: ids must be i32/);
  assert.throws(() => zeros([2], { dtype: "f64" as "f32" }), /unknown dtype "f64"/);
});

Deno.test("axis errors name the op, the dim and the rank", () => {
  assert.throws(() => zeros([2, 3]).sum(2), {
    name: "RangeError",
    message: /sum: dim 2 is out of range for 2 dims/,
  });
  assert.throws(() => zeros([2, 3]).softmax(-3), /softmax: dim -3 is out of range/);
  assert.throws(() => zeros([2, 3]).permute([0, 0]), /permute: dims \[0,0\] repeat an axis/);
  assert.throws(
    () => zeros([2, 3]).narrow(1, 2, 2),
    /narrow: start 2 and length 2 are out of range/,
  );
});

Deno.test("device errors name both devices", () => {
  class OtherCpu extends CpuBackend {
    override readonly device = "other:0";
  }
  const other = Tensor.empty([2], "f32", new OtherCpu());
  assert.throws(() => zeros([2]).add(other), {
    name: "TypeError",
    message: /add: tensors are on different devices: cpu \[2\] and other:0 \[2\]/,
  });
  assert.throws(() => zeros([2], { device: "tpu" }), /unknown device "tpu"/);
  if (!cudaStatus().available) {
    assert.throws(() => zeros([2], { device: "cuda:0" }), /CUDA backend is not available/);
  }
});

Deno.test("index errors name the bad index", () => {
  assert.throws(() => embedding(tensor([5], { dtype: "i32" }), randn([4, 2])), RangeError);
  assert.throws(() => crossEntropy(randn([1, 3]), tensor([3], { dtype: "i32" })), RangeError);
  assert.throws(() => randn([3]).indexSelect(0, tensor([3], { dtype: "i32" })), RangeError);
});

Deno.test("data errors: ragged arrays, wrong lengths, disposed tensors", () => {
  assert.throws(() => tensor([[1, 2], [3]]), /tensor: ragged nested array/);
  assert.throws(
    () => tensor(new Float32Array(5), { shape: [2, 3] }),
    /needs 6 elements, data has 5/,
  );
  assert.throws(() => zeros([-1]), RangeError);
  assert.throws(() => arange(0, 1, 0), /step must be non-zero/);
  const t = zeros([2]);
  t.dispose();
  assert.throws(() => t.add(1), /add: input of shape \[2\] was disposed/);
  assert.throws(() => randn([2]).item(), /item: tensor of shape \[2\] has 2 elements/);
});

Deno.test("a failed op leaves live memory unchanged", () => {
  const a = zeros([2, 3]), b = zeros([4, 5]);
  const before = memoryStats().liveBytes;
  assert.throws(() => matmul(a, b));
  assert.throws(() => a.add(b));
  assert.equal(memoryStats().liveBytes, before);
});

Deno.test("i32 tensors refuse values that would wrap, naming the first bad value and its index", () => {
  const before = memoryStats().liveBytes;
  assert.throws(() => tensor([2 ** 40, NaN, 2 ** 31], { dtype: "i32" }), {
    name: "RangeError",
    message: "tensor: 1099511627776 at index 0 cannot be converted to i32 without overflow " +
      "(i32 holds -2147483648..2147483647)",
  });
  assert.throws(() => tensor([1, 2, NaN], { dtype: "i32" }), /tensor: NaN at index 2 /);
  assert.throws(() => tensor([[1], [2 ** 31]], { dtype: "i32" }), /2147483648 at index 1 /);
  assert.throws(() => tensor(new Float64Array([-Infinity]), { dtype: "i32" }), /-Infinity/);
  assert.throws(() => tensor(new Uint32Array([2 ** 32 - 1])), /4294967295 at index 0/);
  assert.throws(() => full([2], 2 ** 31, { dtype: "i32" }), /full: 2147483648 cannot/);
  assert.throws(() => arange(2 ** 31 - 2, 2 ** 31 + 2), /arange: 2147483649 \(the last value\)/);
  assert.equal(memoryStats().liveBytes, before);
  // In range: fractions truncate toward zero, as torch.tensor(..., dtype=torch.int32) does.
  const t = tensor([2.7, -2.7, -(2 ** 31), 2 ** 31 - 1], { dtype: "i32" });
  assert.deepEqual(t.toArray(), [2, -2, -(2 ** 31), 2 ** 31 - 1]);
  t.dispose();
});

Deno.test("index and size errors name the op the user called", () => {
  const x = tensor([1, 2, 3]), i = tensor([5], { dtype: "i32" });
  const before = memoryStats().liveBytes;
  assert.throws(() => indexSelect(x, 0, i), {
    name: "RangeError",
    message: "indexSelect: index 5 is out of bounds for axis 0 with size 3",
  });
  assert.equal(memoryStats().liveBytes, before); // the output was freed
  x.dispose();
  i.dispose();
  assert.throws(
    () => zeros([2 ** 31, 2 ** 31]),
    /^RangeError: zeros: shape \[2147483648,2147483648\] has 4\.61e\+18 elements/,
  );
  // 128 TiB: more than a 64-bit process can address, whatever the machine.
  assert.throws(
    () => zeros([2 ** 23, 2 ** 22]),
    /cpu: out of memory: cannot allocate 131072\.00 GiB/,
  );
});
