/**
 * Random: the soak's one source of chance, seeded, so a seed names a schedule. The driver draws
 * every decision from one `Random` (which workflow, its input, when and whom to kill, which runs
 * to revoke, which faults to inject); task bodies draw their durations from `hashUnit` over the
 * seed and the try's identity, so a body re-run for the same try sleeps as long as the first.
 * Timing still depends on the machine: a seed reproduces the plan, not the interleaving.
 */
import { createHash } from "node:crypto"

/** A seeded generator (mulberry32: 32-bit state, good enough for schedules, not for secrets). */
export class Random {
  #state: number

  constructor(seed: number) {
    this.#state = seed >>> 0
  }

  /** Uniform in [0, 1). */
  next(): number {
    this.#state = (this.#state + 0x6d2b79f5) >>> 0
    let t = this.#state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }

  /** Uniform in [lo, hi). */
  between(lo: number, hi: number): number {
    return lo + (hi - lo) * this.next()
  }

  /** An integer in [lo, hi]. */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1))
  }

  /** True with probability `p`. */
  chance(p: number): boolean {
    return this.next() < p
  }

  /** An exponentially distributed wait with this mean (a Poisson process's gaps). */
  exponential(mean: number): number {
    return -Math.log(1 - this.next()) * mean
  }

  pick<A>(items: ReadonlyArray<A>): A {
    if (items.length === 0) throw new RangeError("pick from an empty list")
    return items[Math.floor(this.next() * items.length)]!
  }

  /** One of `weights`' keys, with probability proportional to its weight. */
  weighted<K extends string>(weights: Readonly<Record<K, number>>): K {
    const entries = Object.entries(weights) as Array<[K, number]>
    const total = entries.reduce((sum, [, w]) => sum + w, 0)
    let x = this.next() * total
    for (const [key, w] of entries) {
      x -= w
      if (x < 0) return key
    }
    return entries[entries.length - 1]![0]
  }
}

/** A deterministic number in [0, 1) for `parts` (e.g. seed, run, node, attempt). */
export const hashUnit = (...parts: ReadonlyArray<string | number>): number =>
  createHash("sha256").update(parts.join("\u0000")).digest().readUInt32BE(0) / 4294967296
