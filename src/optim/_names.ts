// Parameter-name rules shared by the optimizer factories.

/** Whether a parameter path names a bias (`...bias`, e.g. `h.0.attn.c_attn.bias`). */
export function isBiasName(name: string): boolean {
  return name === "bias" || name.endsWith(".bias");
}
