/**
 * TaskName: the Cloud Tasks task id of a ready node's callback. It is deterministic, so a
 * re-dispatch of the same callback (the sweeper after a crash, a retried dispatch) is refused
 * with `ALREADY_EXISTS` instead of queueing a second task; and it starts with a hash, so names
 * are spread over the key space rather than sequential (Google's guidance for task names).
 *
 *     <12 hex of sha256(run, node, attempt, generation[, hop second])>-<run>-<node>-<attempt>
 *
 * A new attempt (a retry), a new generation (the node made ready again after its lease was
 * reclaimed) and every hop of a long wait get a new name; characters Cloud Tasks does not allow
 * in an id (`[A-Za-z0-9_-]`, at most 500) are replaced by `_` in the readable part, which the
 * hash keeps unambiguous.
 *
 * ```ts
 * taskId({ run: "0b6c…", node: "s1-charge#3", attempt: 2, generation: 0 })
 * // "5f0e2a9c41d7-0b6c…-s1-charge_3-2"
 * ```
 */
import { createHash } from "node:crypto"

/** Cloud Tasks' limit on a task id. */
export const maxTaskIdLength = 500

/** What identifies one dispatch of a node: a `ReadyRef` has these fields. */
export interface DispatchKey {
  readonly run: string
  readonly node: string
  readonly attempt: number
  readonly generation: number
}

const unsafe = /[^A-Za-z0-9_-]/g
const hashLength = 12

/** The task id for `key`; `hopAt` (epoch ms) names an intermediate hop of a long wait. */
export const taskId = (key: DispatchKey, hopAt?: number): string => {
  const parts: Array<string | number> = [key.run, key.node, key.attempt, key.generation]
  if (hopAt !== undefined) parts.push(Math.floor(hopAt / 1000))
  const hash = createHash("sha256").update(JSON.stringify(parts)).digest("hex").slice(0, hashLength)
  const run = key.run.replace(unsafe, "_")
  const tail = `-${key.attempt}`
  const room = maxTaskIdLength - hashLength - run.length - tail.length - 2
  const node = key.node.replace(unsafe, "_").slice(0, Math.max(0, room))
  return `${hash}-${run}-${node}${tail}`.slice(0, maxTaskIdLength)
}
