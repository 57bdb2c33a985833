// Adam (Kingma & Ba), plain: per-element first and second moment estimates with bias correction.

export interface AdamOptions {
  learningRate: number;
  /** Default 0.9. */
  beta1?: number;
  /** Default 0.999. */
  beta2?: number;
  /** Default 1e-8. */
  epsilon?: number;
}

export class Adam {
  readonly #params: Float32Array[];
  readonly #m: Float32Array[];
  readonly #v: Float32Array[];
  readonly #lr: number;
  readonly #beta1: number;
  readonly #beta2: number;
  readonly #epsilon: number;
  #t = 0;

  /** Updates `params` in place at each step(). */
  constructor(params: Float32Array[], options: AdamOptions) {
    this.#params = params;
    this.#m = params.map((p) => new Float32Array(p.length));
    this.#v = params.map((p) => new Float32Array(p.length));
    this.#lr = options.learningRate;
    this.#beta1 = options.beta1 ?? 0.9;
    this.#beta2 = options.beta2 ?? 0.999;
    this.#epsilon = options.epsilon ?? 1e-8;
  }

  /**
   * One update with `grads`, aligned with the params given to the constructor, at `learningRate`
   * (default the constructor's; a schedule passes its own).
   */
  step(grads: Float32Array[], learningRate = this.#lr): void {
    this.#t++;
    const lr = learningRate;
    const b1 = this.#beta1;
    const b2 = this.#beta2;
    const c1 = 1 - Math.pow(b1, this.#t);
    const c2 = 1 - Math.pow(b2, this.#t);
    for (let k = 0; k < this.#params.length; k++) {
      const p = this.#params[k];
      const g = grads[k];
      const m = this.#m[k];
      const v = this.#v[k];
      if (g.length !== p.length) {
        throw new Error(`Adam: gradient ${k} has ${g.length} elements, its parameter ${p.length}`);
      }
      for (let i = 0; i < p.length; i++) {
        m[i] = b1 * m[i] + (1 - b1) * g[i];
        v[i] = b2 * v[i] + (1 - b2) * g[i] * g[i];
        p[i] -= (lr * (m[i] / c1)) / (Math.sqrt(v[i] / c2) + this.#epsilon);
      }
    }
  }
}
