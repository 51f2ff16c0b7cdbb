import { Cause, Context, Data, Effect, Exit, Layer, Schema } from "effect"
import { describe, expect, it } from "vitest"
import {
  type AnyWorkflow,
  chain,
  InvalidInput,
  type RunRef,
  type StartOptions,
  task,
  workflow,
  WorkflowStarter,
} from "../../dsl/index.ts"
import { charge, checkout, Order, reserve } from "../fixtures/checkout.ts"

class OutOfStock extends Data.TaggedError("OutOfStock")<{ readonly sku: string }> {}

describe("task.runEffect", () => {
  it("runs an Effect-returning run", async () => {
    await expect(Effect.runPromise(reserve.runEffect({ orderId: "o-1" }))).resolves.toEqual({ orderId: "o-1", amount: 42 })
  })

  it("runs a Promise-returning run", async () => {
    await expect(Effect.runPromise(charge.runEffect({ orderId: "o-2", amount: 10 }))).resolves.toEqual({
      orderId: "o-2",
      chargeId: "ch-o-2",
    })
  })

  it("the type-erased run (what the engine calls) behaves the same", async () => {
    await expect(Effect.runPromise(charge.run({ orderId: "o-3", amount: 1 }) as Effect.Effect<unknown>)).resolves.toEqual({
      orderId: "o-3",
      chargeId: "ch-o-3",
    })
  })

  it("is lazy: run is not called until the Effect runs, and again on each run", async () => {
    let calls = 0
    const counted = task("counted", {
      input: Schema.Number,
      output: Schema.Number,
      run: async (n) => {
        calls += 1
        return n + calls
      },
    })
    const effect = counted.runEffect(10)
    expect(calls).toBe(0)
    await expect(Effect.runPromise(effect)).resolves.toBe(11)
    await expect(Effect.runPromise(effect)).resolves.toBe(12)
    expect(calls).toBe(2)
  })

  it("a failing Effect keeps its typed error", async () => {
    const pick = task("pick", {
      input: Schema.String,
      output: Schema.Number,
      run: (sku) => (sku === "none" ? Effect.fail(new OutOfStock({ sku })) : Effect.succeed(sku.length)),
    })
    await expect(Effect.runPromise(pick.runEffect("abc"))).resolves.toBe(3)
    // the error channel is typed: Effect.flip yields an OutOfStock, no cast needed
    const error: OutOfStock = await Effect.runPromise(Effect.flip(pick.runEffect("none")))
    expect(error).toBeInstanceOf(OutOfStock)
    expect(error._tag).toBe("OutOfStock")
    expect(error.sku).toBe("none")
    // catchTag can discriminate on it
    const recovered = pick.runEffect("none").pipe(Effect.catchTag("OutOfStock", (e) => Effect.succeed(`no ${e.sku}`)))
    await expect(Effect.runPromise(recovered)).resolves.toBe("no none")
    // and it is a failure, not a defect
    const exit = await Effect.runPromiseExit(pick.runEffect("none"))
    expect(Exit.isFailure(exit) && Cause.hasFails(exit.cause) && !Cause.hasDies(exit.cause)).toBe(true)
  })

  it("a rejected Promise is a defect, not a typed failure", async () => {
    const boom = new Error("boom")
    const rejecting = task("rejecting", {
      input: Schema.Number,
      output: Schema.Number,
      run: async () => {
        throw boom
      },
    })
    const exit = await Effect.runPromiseExit(rejecting.runEffect(1))
    expect(exit._tag).toBe("Failure")
    const cause = (exit as Exit.Failure<number, never>).cause
    expect(Cause.hasDies(cause)).toBe(true)
    expect(Cause.hasFails(cause)).toBe(false)
    expect(Cause.squash(cause)).toBe(boom)
  })

  it("a synchronous throw inside run is a defect", async () => {
    const throwing = task("throwing", {
      input: Schema.Number,
      output: Schema.Number,
      run: () => {
        throw new Error("sync boom")
      },
    })
    const exit = await Effect.runPromiseExit(throwing.runEffect(1))
    expect(Exit.isFailure(exit) && Cause.hasDies(exit.cause)).toBe(true)
  })

  it("a run that needs a service gets it from the environment", async () => {
    class Prices extends Context.Service<Prices, { readonly of: (sku: string) => number }>()("test/Prices") {}
    const price = task("price", {
      input: Schema.String,
      output: Schema.Number,
      run: (sku) => Prices.use((prices) => Effect.succeed(prices.of(sku))),
    })
    const value = price.runEffect("abc").pipe(Effect.provideService(Prices, { of: (sku) => sku.length * 100 }))
    await expect(Effect.runPromise(value)).resolves.toBe(300)
  })

  it("exposes its schemas and JSON codecs", () => {
    expect(reserve.input).toBe(Order)
    expect(reserve.name).toBe("reserve")
    expect(Schema.decodeUnknownSync(reserve.inputJson)({ orderId: "x" })).toEqual({ orderId: "x" })
    expect(() => Schema.decodeUnknownSync(reserve.inputJson)({ orderId: 1 })).toThrow()
    expect(Schema.decodeUnknownSync(reserve.outputJson)({ orderId: "x", amount: 1 })).toEqual({ orderId: "x", amount: 1 })
    const dated = task("dated", { input: Schema.Date, output: Schema.Date, run: (d) => Effect.succeed(d) })
    expect(Schema.encodeSync(dated.outputJson)(new Date(0))).toBe("1970-01-01T00:00:00.000Z")
    expect(dated.queue).toBeUndefined()
    expect(dated.timeoutMs).toBeUndefined()
  })
})

describe("workflow.start through the WorkflowStarter port", () => {
  interface Call {
    readonly workflow: AnyWorkflow
    readonly input: unknown
    readonly options: StartOptions
  }

  const fakeStarter = (calls: Array<Call>) =>
    Layer.succeed(WorkflowStarter, {
      start: (wf, input, options) => {
        calls.push({ workflow: wf, input, options })
        if ((input as { orderId?: unknown }).orderId === "") {
          return Effect.fail(new InvalidInput({ workflow: wf.name, message: "empty orderId" }))
        }
        return Effect.succeed<RunRef>({ id: `run-${calls.length}`, workflow: wf.name, created: options.idempotencyKey !== "seen" })
      },
    })

  it("passes the workflow, the input and the options to the starter", async () => {
    const calls: Array<Call> = []
    const em = { transaction: "tx-1" }
    const run = await Effect.runPromise(
      checkout.start({ orderId: "o-1" }, { em, idempotencyKey: "order-o-1", delay: 30 }).pipe(Effect.provide(fakeStarter(calls))),
    )
    expect(run).toEqual({ id: "run-1", workflow: "checkout", created: true })
    expect(calls).toHaveLength(1)
    expect(calls[0]!.workflow).toBe(checkout)
    expect(calls[0]!.input).toEqual({ orderId: "o-1" })
    expect(calls[0]!.options).toEqual({ em, idempotencyKey: "order-o-1", delay: 30 })
    // the caller's transaction travels as the same value, untouched
    expect(calls[0]!.options.em).toBe(em)
  })

  it("omitted options arrive as an empty object", async () => {
    const calls: Array<Call> = []
    const small = workflow("small", chain(reserve).then(charge))
    const run = await Effect.runPromise(small.start({ orderId: "o-2" }).pipe(Effect.provide(fakeStarter(calls))))
    expect(run.workflow).toBe("small")
    expect(calls.map((call) => [call.workflow, call.input, call.options])).toEqual([[small, { orderId: "o-2" }, {}]])
  })

  it("an idempotent second start reports created: false (the starter decides)", async () => {
    const calls: Array<Call> = []
    const run = await Effect.runPromise(
      checkout.start({ orderId: "o-3" }, { idempotencyKey: "seen" }).pipe(Effect.provide(fakeStarter(calls))),
    )
    expect(run).toEqual({ id: "run-1", workflow: "checkout", created: false })
  })

  it("the starter's typed error reaches the caller", async () => {
    const calls: Array<Call> = []
    const error = await Effect.runPromise(Effect.flip(checkout.start({ orderId: "" }).pipe(Effect.provide(fakeStarter(calls)))))
    expect(error).toBeInstanceOf(InvalidInput)
    expect(error._tag).toBe("InvalidInput")
    expect(error).toMatchObject({ workflow: "checkout", message: "empty orderId" })
    expect(calls).toHaveLength(1)
  })

  it("start is lazy: nothing reaches the starter until the Effect runs", async () => {
    const calls: Array<Call> = []
    const effect = checkout.start({ orderId: "o-4" }).pipe(Effect.provide(fakeStarter(calls)))
    expect(calls).toHaveLength(0)
    await Effect.runPromise(effect)
    await Effect.runPromise(effect)
    expect(calls.map((call) => call.input)).toEqual([{ orderId: "o-4" }, { orderId: "o-4" }])
  })
})
