/**
 * Faults: named fault points, for the reliability tests and the soak (as DBOS has its debug
 * points). The engine and the dispatchers pass through a point at each seam where a crash or a
 * failure must lose nothing; a test switches a point on and the seam fails there, exactly, instead
 * of hoping a kill lands in the right millisecond.
 *
 * Off by default and free when off: with no point configured, `Faults.at` is never called (the
 * engine checks `enabled` once). Configured by a Layer (`faultsLayer("step.afterCommit=crash")`)
 * or, for whole processes (the soak's workers), by the `TASKGRAPH_FAULTS` environment variable,
 * read once when the engine is built:
 *
 * ```sh
 * TASKGRAPH_FAULTS="step.afterCommit=crash@0.02,lease.renew=fail" node worker.ts
 * ```
 *
 * A rule is `point=action`, optionally `@p` (probability per pass, default 1) and `*n` (at most
 * n times in this process). Actions: `crash` kills the process on the spot (SIGKILL: no
 * finalizer, no release, as `kill -9` would), `fail` makes the operation fail there (a defect
 * `FaultInjected`; a lease renewal that fails as a database error would), `hang` stops the fiber
 * there for good (a frozen process: nothing renews its lease, nothing commits).
 */
import { Context, Data, Effect, Layer } from "effect"
import { DefinitionError } from "../dsl/DefinitionError.ts"

export const faultPoints = [
  /** A task's body (or any node's work) ended; its result is not committed yet. */
  "step.afterBody",
  /** The step committed; the successors it made ready are not dispatched yet. */
  "step.afterCommit",
  /** A running try is about to renew its lease. */
  "lease.renew",
  /** A start's rows are written (and committed, outside a caller's transaction); nothing is dispatched yet. */
  "start.afterCommit",
  /** A dispatcher handed callbacks over (Cloud Tasks: the tasks exist); they are not marked dispatched yet. */
  "dispatch.afterSend",
  /** The Postgres worker claimed nodes; their steps have not started. */
  "worker.afterClaim",
] as const

export type FaultPoint = (typeof faultPoints)[number]
export type FaultAction = "crash" | "fail" | "hang"

export interface FaultRule {
  readonly point: FaultPoint
  readonly action: FaultAction
  /** Chance per pass through the point (default 1). */
  readonly probability?: number
  /** At most this many times in this process (default no limit). */
  readonly times?: number
}

/** What a `fail` rule raises at its point. */
export class FaultInjected extends Data.TaggedError("FaultInjected")<{ readonly point: FaultPoint; readonly message: string }> {}

export interface FaultsShape {
  /** False when no rule is configured: callers skip `at` altogether. */
  readonly enabled: boolean
  /** Passes through `point`: nothing, or the rule's action. */
  readonly at: (point: FaultPoint) => Effect.Effect<void>
  /** How many times each point acted in this process. */
  readonly hits: Readonly<Record<string, number>>
}

const actions: ReadonlyArray<FaultAction> = ["crash", "fail", "hang"]

/** Parses `point=action[@p][*n],…` (throws a `DefinitionError` naming the bad part). */
export const parseFaults = (spec: string): ReadonlyArray<FaultRule> =>
  spec.split(",").map((part) => part.trim()).filter((part) => part !== "").map((part) => {
    const match = /^([\w.]+)=(\w+)(?:@([\d.]+))?(?:\*(\d+))?$/.exec(part)
    if (match === null) throw new DefinitionError({ message: `TASKGRAPH_FAULTS: "${part}" is not point=action[@probability][*times]` })
    const [, point, action, p, n] = match
    if (!(faultPoints as ReadonlyArray<string>).includes(point!)) {
      throw new DefinitionError({ message: `TASKGRAPH_FAULTS: unknown fault point "${point}" (known: ${faultPoints.join(", ")})` })
    }
    if (!(actions as ReadonlyArray<string>).includes(action!)) {
      throw new DefinitionError({ message: `TASKGRAPH_FAULTS: unknown action "${action}" (known: ${actions.join(", ")})` })
    }
    const probability = p === undefined ? undefined : Number(p)
    if (probability !== undefined && !(probability >= 0 && probability <= 1)) {
      throw new DefinitionError({ message: `TASKGRAPH_FAULTS: the probability in "${part}" must be between 0 and 1` })
    }
    return {
      point: point as FaultPoint,
      action: action as FaultAction,
      ...(probability === undefined ? {} : { probability }),
      ...(n === undefined ? {} : { times: Number(n) }),
    }
  })

const make = (rules: ReadonlyArray<FaultRule>): FaultsShape => {
  const hits: Record<string, number> = {}
  const byPoint = new Map<FaultPoint, Array<{ readonly rule: FaultRule; left: number }>>()
  for (const rule of rules) {
    const list = byPoint.get(rule.point) ?? []
    list.push({ rule, left: rule.times ?? Number.POSITIVE_INFINITY })
    byPoint.set(rule.point, list)
  }
  const at = (point: FaultPoint): Effect.Effect<void> =>
    Effect.suspend(() => {
      const entry = byPoint.get(point)?.find((e) => e.left > 0 && Math.random() < (e.rule.probability ?? 1))
      if (entry === undefined) return Effect.void
      entry.left--
      hits[point] = (hits[point] ?? 0) + 1
      switch (entry.rule.action) {
        case "crash":
          return Effect.sync(() => {
            process.kill(process.pid, "SIGKILL")
          }).pipe(Effect.andThen(Effect.never))
        case "fail":
          return Effect.die(new FaultInjected({ point, message: `fault injected at ${point}` }))
        case "hang":
          return Effect.never
      }
    })
  return { enabled: rules.length > 0, at, hits }
}

/** The fault points in force: none unless `TASKGRAPH_FAULTS` names some, or a layer provides them. */
export const Faults = Context.Reference<FaultsShape>("taskgraph/Faults", {
  defaultValue: () => make(parseFaults(process.env.TASKGRAPH_FAULTS ?? "")),
})

/** These rules (a spec string as `TASKGRAPH_FAULTS` takes, or rule values) instead of the environment's. */
export const faultsLayer = (rules: string | ReadonlyArray<FaultRule>): Layer.Layer<never> =>
  Layer.succeed(Faults, make(typeof rules === "string" ? parseFaults(rules) : rules))

/** `faults.at`, or nothing at all when no rule is configured. */
export const faultAt = (faults: FaultsShape) => (point: FaultPoint): Effect.Effect<void> => faults.enabled ? faults.at(point) : Effect.void
