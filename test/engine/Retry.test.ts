/**
 * Retrying a failed run from its failed node, on a real PostgreSQL with the Postgres worker: the
 * failed node gets a new attempt, what succeeded is kept and not run again (its output feeds what
 * follows), the nodes the failure cancelled come back, a join fires once, a map's other elements
 * are not run again, an onError handler fires again on a new failure, and a run that did not
 * fail is refused with nothing changed.
 */
import { Effect, Schema } from "effect"
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest"
import { chain, task, TaskFailure, workflow } from "../../dsl/index.ts"
import { createRuntime, RunFailed, type Runtime } from "../../src/Runtime.ts"
import { testDatabase, type TestDatabase } from "../support/runtime.ts"

let db: TestDatabase
let tg: Runtime
const ran: Array<string> = []
/** The tries that fail while listed here, as `task(input)`. */
const failing = new Set<string>()

const counted = (name: string, f: (n: number) => number) =>
  task(name, {
    input: Schema.Number,
    output: Schema.Number,
    retry: { maxAttempts: 1 },
    run: (n) =>
      Effect.suspend(() => {
        ran.push(`${name}(${n})`)
        return failing.has(`${name}(${n})`) ? Effect.fail(new Error(`${name} refused ${n}`)) : Effect.succeed(f(n))
      }),
  })

const first = counted("rFirst", (n) => n + 1)
const flaky = counted("rFlaky", (n) => n * 10)
const last = counted("rLast", (n) => n + 5)
const linear = workflow("retry-linear", chain(first).then(flaky).then(last))

const left = counted("rLeft", (n) => n + 100)
const right = counted("rRight", (n) => n + 200)
const sum = task("rSum", { input: Schema.Tuple([Schema.Number, Schema.Number]), output: Schema.Number, run: ([a, b]) =>
    Effect.sync(() => {
      ran.push("rSum")
      return a + b
    }),
})
const grouped = workflow("retry-group", chain(first).group([left, right]).then(sum))

const spread = task("rSpread", { input: Schema.Number, output: Schema.Array(Schema.Number), run: (n) => Effect.succeed([n, n + 1, n + 2, n + 3]) })
const element = counted("rElement", (n) => n * 2)
const mapped = workflow("retry-map", chain(spread).map(chain(element)))

const handled: Array<string> = []
const note = task("rNote", { input: TaskFailure, output: Schema.Null, run: (failure) =>
    Effect.sync(() => {
      handled.push(failure.node)
      return null
    }),
})
const guarded = workflow("retry-guarded", chain(first).then(flaky).onError(note))
/** A handler with a join of its own: it records its members' sum once they all arrived. */
const seen = task("rSeen", { input: TaskFailure, output: Schema.Number, run: () => Effect.succeed(1) })
const hLeft = counted("rHLeft", (n) => n + 1)
const hRight = counted("rHRight", (n) => n + 2)
const hDone = task("rHDone", { input: Schema.Tuple([Schema.Number, Schema.Number]), output: Schema.Null, run: ([a, b]) =>
    Effect.sync(() => {
      handled.push(`joined ${a + b}`)
      return null
    }),
})
const guardedJoin = workflow("retry-guarded-join", chain(first).then(flaky).onError(chain(seen).group([hLeft, hRight]).then(hDone)))

beforeAll(async () => {
  db = await testDatabase()
  tg = await createRuntime({ orm: db.orm, workflows: [linear, grouped, mapped, guarded, guardedJoin], worker: { pollInterval: 0.05 } })
})
afterAll(async () => {
  await tg?.close()
  await db?.close()
})
beforeEach(async () => {
  ran.length = 0
  handled.length = 0
  failing.clear()
  await db.reset()
})

/** The id of the flaky step's node in `linear` and `guarded` (the second step). */
const flakyNode = "1-rFlaky"

const attempts = (run: string, node: string) =>
  db.sql<{ attempt: number; outcome: string }>("select attempt, outcome from taskgraph_attempts where run_id = $1 and node_id = $2 order by id", [run, node])

describe("retry a failed run", () => {
  it("from its failed node: a new attempt of it and what follows, what succeeded kept", async () => {
    failing.add("rFlaky(2)")
    const run = await tg.start(linear, 1)
    await expect(run.result({ timeout: 20 })).rejects.toBeInstanceOf(RunFailed)
    expect(ran).toEqual(["rFirst(1)", "rFlaky(2)"])
    failing.clear()
    ran.length = 0
    const outcome = await run.retry()
    expect(outcome).toMatchObject({ _tag: "Retried", nodes: [flakyNode] })
    expect(await run.result({ timeout: 20 })).toBe(25)
    expect(ran).toEqual(["rFlaky(2)", "rLast(20)"])
    expect(await attempts(run.id, flakyNode)).toEqual([{ attempt: 1, outcome: "failed" }, { attempt: 2, outcome: "succeeded" }])
    const [row] = await db.sql("select status, error, finished_at from taskgraph_runs where id = $1", [run.id])
    expect(row).toMatchObject({ status: "succeeded", error: null })
  })

  it("a group: the member that succeeded is not run again, the join fires once", async () => {
    failing.add("rRight(2)")
    const run = await tg.start(grouped, 1)
    await expect(run.result({ timeout: 20 })).rejects.toBeInstanceOf(RunFailed)
    failing.clear()
    ran.length = 0
    expect(await run.retry()).toMatchObject({ _tag: "Retried", nodes: [expect.stringContaining("rRight")] })
    expect(await run.result({ timeout: 20 })).toBe(102 + 202)
    // the left member ran before the failure, or was cut short by it and runs now: never twice to success
    expect(ran.filter((r) => r === "rRight(2)")).toHaveLength(1)
    expect(ran.filter((r) => r === "rSum")).toHaveLength(1)
    expect(await db.count("taskgraph_attempts", "run_id = $1 and node_id like '%rLeft' and outcome = 'succeeded'", [run.id])).toBe(1)
  })

  it("a map: only the failed element runs again; the collect keeps the order", async () => {
    failing.add("rElement(5)")
    const run = await tg.start(mapped, 3)
    await expect(run.result({ timeout: 20 })).rejects.toBeInstanceOf(RunFailed)
    const succeeded = await db.sql<{ input: number }>(
      "select input from taskgraph_nodes where run_id = $1 and template like '%rElement' and state = 'succeeded'",
      [run.id],
    )
    failing.clear()
    ran.length = 0
    const outcome = await run.retry()
    expect(outcome._tag).toBe("Retried")
    expect(await run.result({ timeout: 20 })).toEqual([6, 8, 10, 12])
    // the elements that had succeeded before the failure are not run again (one the failure cut
    // short while it ran is run again: its try never committed)
    const again = ran.filter((r) => r.startsWith("rElement"))
    expect(again).toContain("rElement(5)")
    for (const { input } of succeeded) expect(again).not.toContain(`rElement(${input})`)
    expect(await db.count("taskgraph_attempts", "run_id = $1 and node_id like '%rElement%' and outcome = 'succeeded'", [run.id])).toBe(4)
  })

  it("an onError handler fires again when the retry fails again, and not when it succeeds", async () => {
    failing.add("rFlaky(2)")
    const run = await tg.start(guarded, 1)
    await expect(run.result({ timeout: 20 })).rejects.toBeInstanceOf(RunFailed)
    expect(handled).toEqual([flakyNode])
    expect((await run.retry())._tag).toBe("Retried")
    await expect(run.result({ timeout: 20 })).rejects.toBeInstanceOf(RunFailed)
    expect(handled).toEqual([flakyNode, flakyNode])
    failing.clear()
    expect((await run.retry())._tag).toBe("Retried")
    expect(await run.result({ timeout: 20 })).toBe(20)
    expect(handled).toEqual([flakyNode, flakyNode])
    expect(await attempts(run.id, flakyNode)).toEqual([
      { attempt: 1, outcome: "failed" },
      { attempt: 2, outcome: "failed" },
      { attempt: 3, outcome: "succeeded" },
    ])
  })

  it("an onError handler with a join fires again on a new failure: its join counts its members from none again", async () => {
    failing.add("rFlaky(2)")
    const run = await tg.start(guardedJoin, 1)
    await expect(run.result({ timeout: 20 })).rejects.toBeInstanceOf(RunFailed)
    expect(handled).toEqual(["joined 5"])
    expect((await run.retry())._tag).toBe("Retried")
    await expect(run.result({ timeout: 20 })).rejects.toBeInstanceOf(RunFailed)
    // the handler's join fired again, with both members' new outputs
    expect(handled).toEqual(["joined 5", "joined 5"])
    expect(ran.filter((r) => r.startsWith("rHLeft"))).toHaveLength(2)
  })

  it("a run that did not fail, or does not exist, is refused with nothing changed", async () => {
    const run = await tg.start(linear, 1)
    expect(await run.result({ timeout: 20 })).toBe(25)
    const before = await db.sql("select id, state, attempt, claims from taskgraph_nodes where run_id = $1 order by id", [run.id])
    expect(await run.retry()).toMatchObject({ _tag: "NotFailed", status: "succeeded" })
    expect(await db.sql("select id, state, attempt, claims from taskgraph_nodes where run_id = $1 order by id", [run.id])).toEqual(before)
    expect(await tg.retry("00000000-0000-4000-8000-000000000000")).toMatchObject({ _tag: "NotFound" })
    expect(await tg.retry("not-a-run")).toMatchObject({ _tag: "NotFound" })
  })
})
