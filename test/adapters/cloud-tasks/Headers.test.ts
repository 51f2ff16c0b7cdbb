// A run's headers on the production path: the real Cloud Tasks client → the emulator → the Hono
// routes over HTTP. Every callback of a run started with a `traceparent` carries it as an HTTP
// header (so Cloud Run logs the callback under the run's trace), and the task bodies read it
// from the stored run; a run without headers sends callbacks without them.
import { Effect, Schema } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { chain, task, workflow } from "../../../dsl/index.ts"
import { TaskContext } from "../../../engine/TaskContext.ts"
import { type Harness, startHarness } from "./harness.ts"

const traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
const bodies: Array<Readonly<Record<string, string>>> = []
const step = (name: string) =>
  task(name, {
    input: Schema.Number,
    output: Schema.Number,
    run: (n) =>
      Effect.gen(function*() {
        bodies.push((yield* TaskContext).headers)
        return n + 1
      }),
  })
const traced = workflow("traced", chain(step("tracedA")).then(step("tracedB")).then(step("tracedC")))

const callbacks: Array<{ readonly traceparent: string | undefined; readonly contentType: string | undefined }> = []
let harness: Harness
beforeAll(async () => {
  harness = await startHarness({
    workflows: [traced],
    beforeRoutes: (app) =>
      app.use("/taskgraph/callback", async (c, next) => {
        callbacks.push({ traceparent: c.req.header("traceparent"), contentType: c.req.header("content-type") })
        await next()
      }),
  })
}, 60_000)
afterAll(() => harness?.close())

describe("headers on Cloud Tasks callbacks", () => {
  it("every callback of a run started with a traceparent carries it, and every body reads it", async () => {
    const run = await harness.tg.start(traced, 1, { headers: { traceparent } })
    expect(await run.result({ timeout: 20 })).toBe(4)
    expect(callbacks.length).toBeGreaterThanOrEqual(3)
    for (const callback of callbacks) expect(callback).toEqual({ traceparent, contentType: "application/json" })
    expect(bodies).toEqual([{ traceparent }, { traceparent }, { traceparent }])
  })

  it("a run without headers sends callbacks without them", async () => {
    callbacks.length = 0
    bodies.length = 0
    const run = await harness.tg.start(traced, 1)
    expect(await run.result({ timeout: 20 })).toBe(4)
    expect(callbacks.length).toBeGreaterThanOrEqual(3)
    for (const callback of callbacks) expect(callback.traceparent).toBeUndefined()
    expect(bodies).toEqual([{}, {}, {}])
  })
})
