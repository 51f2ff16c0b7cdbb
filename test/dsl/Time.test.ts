// dsl/Time.ts: the one rule for time across the API. A duration option takes an Effect
// `Duration.Input` and a bare number is seconds; an instant is a Date through its own option.
// Then, for every duration option of the DSL, that a bare number means seconds in the graph.
import { Duration, Effect, Schema } from "effect"
import { describe, expect, it } from "vitest"
import {
  chain,
  compile,
  DefinitionError,
  durationMillis,
  instantMillis,
  IterationSummary,
  type Node,
  optionalDurationMillis,
  task,
  workflow,
} from "../../dsl/index.ts"

const refused = (message: RegExp) => expect.objectContaining({ _tag: "DefinitionError", message: expect.stringMatching(message) })

describe("durationMillis", () => {
  it("reads a bare number as seconds (never as Effect's milliseconds)", () => {
    expect(durationMillis("x", 30)).toBe(30_000)
    expect(durationMillis("x", 1.5)).toBe(1_500)
    expect(durationMillis("x", 0)).toBe(0)
    // rounded to the microsecond: no float noise
    expect(durationMillis("x", 0.07)).toBe(70)
    expect(durationMillis("x", 0.0000015)).toBe(0.002)
  })

  it("reads duration strings", () => {
    expect(durationMillis("x", "250 millis")).toBe(250)
    expect(durationMillis("x", "5 minutes")).toBe(300_000)
    expect(durationMillis("x", "7 days")).toBe(7 * 86_400_000)
    expect(durationMillis("x", "1 second")).toBe(1_000)
  })

  it("reads Duration values, duration objects, [seconds, nanos] tuples and bigint nanoseconds", () => {
    expect(durationMillis("x", Duration.seconds(5))).toBe(5_000)
    expect(durationMillis("x", Duration.millis(20))).toBe(20)
    expect(durationMillis("x", { minutes: 2, seconds: 3 })).toBe(123_000)
    expect(durationMillis("x", { milliseconds: 5 })).toBe(5)
    expect(durationMillis("x", [2, 500_000_000])).toBe(2_500)
    expect(durationMillis("x", 3_000_000n)).toBe(3)
  })

  it("refuses a Date, with the hint that it is an instant", () => {
    const at = new Date("2030-01-01T00:00:00Z")
    expect(() => durationMillis("start delay", at as never)).toThrow(
      refused(/^start delay is not a duration: Date\(2030-01-01T00:00:00.000Z\) \(a Date is an instant: use the option for an instant\)$/),
    )
    expect(() => durationMillis("x", new Date(Number.NaN) as never)).toThrow(refused(/Date\(invalid\)/))
  })

  it("refuses NaN, negative and infinite durations, naming the option", () => {
    expect(() => durationMillis("task \"t\": timeout", Number.NaN)).toThrow(refused(/^task "t": timeout is not a duration: NaN$/))
    expect(() => durationMillis("x", -1)).toThrow(refused(/^x must be a finite, non-negative duration, got -1$/))
    expect(() => durationMillis("x", "-5 seconds")).toThrow(refused(/x must be a finite, non-negative duration, got "-5 seconds"/))
    expect(() => durationMillis("x", Number.POSITIVE_INFINITY)).toThrow(refused(/x must be a finite, non-negative duration, got Infinity/))
    expect(() => durationMillis("x", "Infinity")).toThrow(refused(/finite/))
    expect(() => durationMillis("x", Duration.infinity)).toThrow(refused(/finite/))
    expect(() => durationMillis("x", Number.NEGATIVE_INFINITY)).toThrow(refused(/non-negative/))
  })

  it("accepts Infinity only when the option allows it; refuses zero when it must be positive", () => {
    expect(durationMillis("x", "Infinity", { infinite: true })).toBe(Infinity)
    expect(() => durationMillis("x", -1, { infinite: true })).toThrow(refused(/x must be a non-negative duration/))
    expect(() => durationMillis("x", 0, { positive: true })).toThrow(refused(/^x must be longer than zero$/))
    expect(() => durationMillis("x", "0 millis", { positive: true })).toThrow(refused(/longer than zero/))
    expect(durationMillis("x", 0.001, { positive: true })).toBe(1)
  })

  it("refuses what is not a duration: unparsable strings, NaN or unknown fields in objects, other types", () => {
    expect(() => durationMillis("x", "soon" as never)).toThrow(refused(/^x is not a duration: "soon"$/))
    expect(() => durationMillis("x", "5 fortnights" as never)).toThrow(refused(/not a duration/))
    expect(() => durationMillis("x", { seconds: Number.NaN })).toThrow(refused(/^x is not a duration: \{ seconds: NaN \}$/))
    expect(() => durationMillis("x", { minute: 5 } as never)).toThrow(refused(/not a duration: \{ minute: 5 \}/))
    expect(() => durationMillis("x", [1, Number.NaN])).toThrow(refused(/not a duration: \[1, NaN\]/))
    expect(() => durationMillis("x", null as never)).toThrow(refused(/not a duration: null/))
    expect(() => durationMillis("x", true as never)).toThrow(refused(/not a duration: true/))
    expect(() => durationMillis("x", (() => 1) as never)).toThrow(DefinitionError)
  })

  it("optionalDurationMillis: the fallback (milliseconds) when absent, the rule otherwise", () => {
    expect(optionalDurationMillis("x", undefined, 1_234)).toBe(1_234)
    expect(optionalDurationMillis("x", 2, 1_234)).toBe(2_000)
    expect(() => optionalDurationMillis("x", 0, 1, { positive: true })).toThrow(refused(/longer than zero/))
  })
})

describe("instantMillis", () => {
  it("reads a Date as epoch milliseconds", () => {
    expect(instantMillis("at", new Date("2030-01-01T00:00:00Z"))).toBe(Date.UTC(2030, 0, 1))
  })

  it("refuses an invalid Date, and what is not a Date (a duration with a hint)", () => {
    expect(() => instantMillis("start at", new Date("not a date"))).toThrow(refused(/^start at is an invalid Date$/))
    expect(() => instantMillis("at", 30 as never)).toThrow(refused(/^at is not a Date: 30 \(a duration: use the option for a duration\)$/))
    expect(() => instantMillis("at", "2030-01-01" as never)).toThrow(refused(/^at is not a Date: "2030-01-01"$/))
  })
})

describe("every DSL duration option reads a bare number as seconds", () => {
  const opts = { input: Schema.Number, output: Schema.Number, run: (n: number) => Effect.succeed(n) }
  const nodeOf = (nodes: ReadonlyArray<Node>, id: string) => nodes.find((n) => n.id === id)

  it("task timeout: 2 is 2000 ms in the graph", () => {
    const t = task("timed", { ...opts, timeout: 2 })
    expect(t.timeoutMs).toBe(2_000)
    expect(nodeOf(compile(workflow("w", chain(t))).nodes, "0-timed")).toMatchObject({ timeoutMs: 2_000 })
  })

  it("retry initialDelay: 1 is 1000 ms, maxDelay: 60 is 60000 ms", () => {
    const t = task("retried", { ...opts, retry: { initialDelay: 1, maxDelay: 60 } })
    expect(t.retry).toMatchObject({ initialDelayMs: 1_000, maxDelayMs: 60_000 })
    expect(nodeOf(compile(workflow("w", chain(t))).nodes, "0-retried")).toMatchObject({ retry: { initialDelayMs: 1_000, maxDelayMs: 60_000 } })
  })

  it("deduplicate window: 30 is 30000 ms, on the workflow and on its first task", () => {
    const first = task("first", opts)
    expect(workflow("w", chain(first), { deduplicate: { window: 30 } }).deduplicateMs).toBe(30_000)
    const deduplicating = task("dedup", { ...opts, deduplicate: { window: 30 } })
    expect(workflow("w2", chain(deduplicating)).deduplicateMs).toBe(30_000)
    expect(workflow("w3", chain(deduplicating), { deduplicate: { window: "1 minute" } }).deduplicateMs).toBe(60_000)
  })

  it("iterate timeBudget: 20 is 20000 ms in the graph", () => {
    const each = task("eachRow", { input: Schema.Unknown, output: Schema.Null, run: () => Effect.succeed(null) })
    const report = task("report", { input: IterationSummary, output: Schema.Number, run: (s) => Effect.succeed(s.rows) })
    const wf = workflow("w", chain(task("start", opts)).iterate("rows", { entity: {}, each, finalize: report, timeBudget: 20 }))
    const iterate = compile(wf).nodes.find((n) => n.kind === "iterate")
    expect(iterate).toMatchObject({ kind: "iterate", timeBudgetMs: 20_000 })
    expect(() => chain(task("s2", opts)).iterate("bad", { entity: {}, each, finalize: report, timeBudget: "soon" as never })).toThrow(
      refused(/^iterate "bad": timeBudget is not a duration: "soon"$/),
    )
  })

  it("delay(300) is 300000 ms, the same graph as delay(\"5 minutes\")", () => {
    const t = task("waited", opts)
    const graph = compile(workflow("w", chain(t).delay(300)))
    expect(nodeOf(graph.nodes, "1-delay")).toEqual({ kind: "delay", id: "1-delay", millis: 300_000 })
    expect(compile(workflow("w", chain(t).delay("5 minutes"))).hash).toBe(graph.hash)
  })
})
