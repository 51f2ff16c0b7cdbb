/**
 * What every system in the peers benchmark implements (taskgraph and each peer, one file each
 * beside this one), and the pieces they share.
 *
 * Each workload call brings the system up on its own database, does the work, and takes it down
 * again (every pool closed), so the driver's counters for that database cover the system's whole
 * life for that workload: start-up, the work, its background loops, shutdown. The time it returns
 * covers the work alone.
 */
import { readFileSync } from "node:fs"
import { createRequire } from "node:module"
import path from "node:path"

export interface PeerContext {
  /** URL of this system's own database on the shared server. */
  readonly url: string
  /** Jobs (steps) the system may run at once, the same for every system. */
  readonly concurrency: number
}

export interface Timed {
  /** Wall time of the work, from its first start to the moment its last step (the finalizer) ran. */
  readonly ms: number
}

export interface LatencySamples {
  /** `start()` (or enqueue) called → the first step's body running, one sample per run. */
  readonly startMs: ReadonlyArray<number>
  /** The first step's body running → the second step's body running. */
  readonly stepMs: ReadonlyArray<number>
}

export interface StartsResult {
  /** `n` starts, one call each, in one transaction where the system allows it. */
  readonly ms: number
  /** Whether the `n` starts shared one transaction (DBOS cannot: every start commits on its own). */
  readonly oneTransaction: boolean
  /** Per-start row width the system wrote, in bytes (for the physical-limit rows), where known. */
  readonly rowBytes?: number
  /** The rows the starts wrote (taskgraph's), for the limit that inserts the same rows. */
  readonly written?: WrittenRows
}

/**
 * Rows a system wrote, table by table in the order they must be inserted (a referenced table
 * first): every column that is not null in some row, each value as PostgreSQL's text of it, in
 * the order the rows were written. `referenced`: rows of other tables the rows need (a foreign
 * key's target), inserted before the timing starts.
 */
export interface WrittenRows {
  readonly referenced: ReadonlyArray<TableRows>
  readonly tables: ReadonlyArray<TableRows>
}

export interface TableRows {
  readonly table: string
  readonly columns: ReadonlyArray<{ readonly name: string; readonly type: string; readonly values: ReadonlyArray<string | null> }>
  readonly rows: number
}

export interface Peer {
  readonly name: string
  readonly version: string
  /** How this system does each workload, printed under the tables. */
  readonly how: Readonly<Record<"chain" | "latency" | "fanout" | "starts", string>> & { readonly bulkStarts?: string }
  /** Schema installation and other one-off set-up; throws when the system cannot run here. */
  readonly setup: () => Promise<void>
  /** A chain of `n` steps, each one enqueuing (or being) the next. */
  readonly chain: (n: number) => Promise<Timed>
  /** `k` two-step runs, one at a time. */
  readonly latency: (k: number) => Promise<LatencySamples>
  /** One job fanning out to `m` children, then a finalizer that runs once all of them are done. */
  readonly fanout: (m: number) => Promise<Timed>
  /** `n` starts that nothing runs; the system's tables are emptied of them afterwards. */
  readonly starts: (n: number) => Promise<StartsResult>
  /** The same `n` starts through the system's bulk call (one statement, one transaction), where it has one. */
  readonly bulkStarts?: (n: number) => Promise<Timed & { readonly written?: WrittenRows }>
}

/** The installed version of a package (its package.json), or "?" when it is not installed. */
export const installedVersion = (pkg: string): string => {
  try {
    const require = createRequire(import.meta.url)
    let dir = path.dirname(require.resolve(pkg))
    for (;;) {
      try {
        const manifest = JSON.parse(readFileSync(path.join(dir, "package.json"), "utf8")) as { name?: string; version?: string }
        if (manifest.name === pkg) return manifest.version ?? "?"
      } catch {
        // no package.json at this level
      }
      const parent = path.dirname(dir)
      if (parent === dir) return "?"
      dir = parent
    }
  } catch {
    return "?"
  }
}

/** A promise that resolves when `resolve(key)` has been called `count` times, or rejects after `timeoutMs`. */
export const countdown = (count: number, timeoutMs: number, label: string) => {
  let left = count
  let done!: () => void
  let fail!: (error: Error) => void
  const promise = new Promise<void>((resolve, reject) => {
    done = resolve
    fail = reject
  })
  const timer = setTimeout(() => fail(new Error(`${label}: ${left} of ${count} not done after ${timeoutMs} ms`)), timeoutMs)
  const tick = () => {
    left -= 1
    if (left === 0) {
      clearTimeout(timer)
      done()
    }
  }
  return { promise, tick }
}

/** Waits for `predicate` (a Map lookup, say), polling every 2 ms, up to `timeoutMs`. */
export const waitFor = async (predicate: () => boolean, timeoutMs: number, label: string): Promise<void> => {
  const deadline = Date.now() + timeoutMs
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`${label}: not done after ${timeoutMs} ms`)
    await new Promise((resolve) => setTimeout(resolve, 2))
  }
}

/** Runs `body` and rejects if it has not settled after `ms`. */
export const withTimeout = <A>(ms: number, label: string, body: Promise<A>): Promise<A> => {
  let timer: NodeJS.Timeout | undefined
  return Promise.race([
    body,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${label}: timed out after ${ms} ms`)), ms)
    }),
  ]).finally(() => clearTimeout(timer))
}

/** A random pause between latency samples, so no system benefits from a steady rhythm. */
export const pause = () => new Promise<void>((resolve) => setTimeout(resolve, 20 + Math.random() * 60))
