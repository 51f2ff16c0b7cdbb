/**
 * Shards: one logical queue spread over several Cloud Tasks queues, because one queue dispatches
 * at most 500 tasks a second. A queue declared with `shards: n` is the queues `name`, `name-1`,
 * … `name-(n-1)` (shard 0 keeps the bare name, so going from 1 shard to n keeps the queue that
 * exists); `taskgraph queues sync` creates them all with the same settings, and the dispatcher
 * puts each node's callback on one of them, chosen by a jump consistent hash of (run, node):
 *
 * - deterministic: every dispatch of a node (a retry, a new generation, the sweeper's re-dispatch,
 *   a hop of a long wait) goes to the same shard, so its deterministic task name still meets its
 *   earlier task there and Cloud Tasks answers `ALREADY_EXISTS`; revoking deletes from that shard;
 * - minimal movement: when n changes to m, only the nodes whose shard changes move (a fraction
 *   |m - n| / max(m, n) of them, the least any spread can move), and growing from n keeps every
 *   other node on its shard. A moved node re-dispatched after the change gets a second task in its
 *   new shard; the engine's claim makes the second delivery a no-op (docs/scale.md).
 *
 * Shards exist only between the dispatcher and Cloud Tasks: nodes keep their logical queue name
 * in the store, so a Postgres worker serving "emails" serves every node of every shard of it.
 *
 * ```ts
 * shardQueueIds("emails", 4)            // ["emails", "emails-1", "emails-2", "emails-3"]
 * shardOf("0b6c…", "s1-send#17", 4)     // 0..3, the same on every call and every process
 * queueShards([{ name: "emails", shards: 4 }, { name: "taskgraph" }]) // { emails: 4 }
 * ```
 */
import { createHash } from "node:crypto"
import type { QueueSpec } from "./QueueSpec.ts"

/** The most shards a queue may have (Cloud Tasks allows 1,000 queues per project and region). */
export const maxShards = 100

/** A shard count: an integer in [1, maxShards]. */
export const isShardCount = (n: unknown): n is number => typeof n === "number" && Number.isInteger(n) && n >= 1 && n <= maxShards

/** The queue id of shard `shard` of `queueId`: the id itself for shard 0, `<id>-<shard>` otherwise. */
export const shardQueueId = (queueId: string, shard: number): string => (shard === 0 ? queueId : `${queueId}-${shard}`)

/** The queue ids of every shard of `queueId`. */
export const shardQueueIds = (queueId: string, shards: number): Array<string> =>
  Array.from({ length: shards }, (_, shard) => shardQueueId(queueId, shard))

const mask64 = (1n << 64n) - 1n

/** 64 bits of sha256(run, node): stable across processes, versions and platforms. */
const keyOf = (run: string, node: string): bigint =>
  BigInt(`0x${createHash("sha256").update(JSON.stringify([run, node])).digest("hex").slice(0, 16)}`)

/**
 * Lamping and Veach's jump consistent hash: the bucket in [0, buckets) of a 64-bit key, such
 * that going from n to n + 1 buckets moves exactly the keys that land in the new bucket.
 */
export const jumpHash = (key: bigint, buckets: number): number => {
  let k = key & mask64
  let b = -1
  let j = 0
  while (j < buckets) {
    b = j
    k = (k * 2862933555777941757n + 1n) & mask64
    j = Math.floor((b + 1) * (2 ** 31 / (Number(k >> 33n) + 1)))
  }
  return b
}

/** The shard in [0, shards) of node `node` of run `run`. */
export const shardOf = (run: string, node: string, shards: number): number => (shards <= 1 ? 0 : jumpHash(keyOf(run, node), shards))

/** Queue id → shard count, for the dispatcher's `shards`, from the declared queues (those with more than one). */
export const queueShards = (specs: ReadonlyArray<QueueSpec>): Record<string, number> => {
  const shards: Record<string, number> = {}
  for (const spec of specs) if (spec.shards !== undefined && spec.shards > 1) shards[spec.name] = spec.shards
  return shards
}

/**
 * The declared queues with every sharded one replaced by its shards (each with the same
 * settings and no `shards`), in declaration order; what `syncQueues` provisions.
 */
export const expandShards = (specs: ReadonlyArray<QueueSpec>): Array<QueueSpec> =>
  specs.flatMap((spec) => {
    const { shards, ...settings } = spec
    return isShardCount(shards) ? shardQueueIds(spec.name, shards).map((name) => ({ ...settings, name })) : [settings]
  })
